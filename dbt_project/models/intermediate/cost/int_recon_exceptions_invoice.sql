{#- Invoice exceptions: the CUR's billed total of a period against the AWS invoice total
    finance supplied (stg_catalog__aws_invoice_totals), when one is supplied; a difference of
    more than a cent, or an invoice total with no CUR delivery, is an exception. -#}
with

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

invoice_totals as (

    select * from {{ ref('stg_catalog__aws_invoice_totals') }}

),

cur_totals as (

    select
        billing_period,
        {{ round_money('sum(billed_cost)', 2) }} as cur_total
    from cost_lines
    group by billing_period

),

compared as (

    select
        cast(invoice_totals.billing_period || '-01' as date) as period_start,
        invoice_totals.invoice_id,
        invoice_totals.total as invoice_total,
        cur_totals.cur_total
    from invoice_totals
    left join cur_totals
        on cast(invoice_totals.billing_period || '-01' as date) = cur_totals.billing_period

)

select
    'RECON-' || to_char(period_start, 'YYYY-MM') as recon_id,
    period_start,
    'Invoice' as category,
    'aws_invoice:' || coalesce(invoice_id, to_char(period_start, 'YYYY-MM')) as key,
    case
        when cur_total is null then format('AWS invoice %s totals %s but no CUR delivery is loaded', invoice_id, invoice_total)
        else format('CUR billed total %s vs AWS invoice %s total %s', cur_total, invoice_id, invoice_total)
    end as detail,
    coalesce(cur_total, 0) - invoice_total as amount
from compared
where cur_total is null or abs(cur_total - invoice_total) > 0.01
