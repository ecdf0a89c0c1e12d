{#- Billing exceptions for recon_exceptions, from what the nightly build and the emitter write:
    - Usage: metered usage that no invoice can price: hours of a subscription outside every one
      of its catalog rows, or of a subscription the catalog does not know (key
      usage:<subscription_id>:<metric_code>, amount = the quantity left out);
    - Invoice: an issued invoice whose total is not its lines plus its tax, or whose credits are
      not its credit lines (key invoice:<invoice_number>, amount = the difference). -#}
with

usage as (

    select * from {{ ref('usage_metered_hourly') }}

),

subscriptions as (

    select * from {{ ref('stg_catalog__subscriptions') }}

),

issued as (

    select * from {{ ref('stg_billing__invoices') }}

),

issued_lines as (

    select * from {{ ref('stg_billing__invoice_line_items') }}

),

unpriceable as (

    select
        cast(date_trunc('month', usage.hour at time zone 'UTC') as date) as period_start,
        usage.subscription_id,
        usage.metric_code,
        sum(usage.quantity) as quantity,
        bool_or(known.subscription_id is not null) as is_known_subscription
    from usage
    left join subscriptions
        on subscriptions.subscription_id = usage.subscription_id
        and usage.hour >= subscriptions.started_at
        and (subscriptions.ended_at is null or usage.hour < subscriptions.ended_at)
    left join (select distinct subscription_id from subscriptions) as known
        on known.subscription_id = usage.subscription_id
    where subscriptions.subscription_id is null
        and usage.quantity <> 0
    group by 1, 2, 3

),

line_totals as (

    select
        invoice_id,
        coalesce(sum(amount), 0) as lines_total,
        coalesce(-sum(amount) filter (where kind = 'credit'), 0) as credit_lines
    from issued_lines
    group by 1

),

invoice_mismatches as (

    select
        issued.period_start,
        issued.invoice_number,
        issued.total,
        issued.tax,
        issued.credits,
        coalesce(line_totals.lines_total, 0) as lines_total,
        coalesce(line_totals.credit_lines, 0) as credit_lines
    from issued
    left join line_totals
        on line_totals.invoice_id = issued.invoice_id
    where issued.is_live
        and (
            issued.total <> coalesce(line_totals.lines_total, 0) + issued.tax
            or issued.credits <> coalesce(line_totals.credit_lines, 0)
        )

)

select
    'RECON-' || to_char(period_start, 'YYYY-MM') as recon_id,
    period_start,
    'Usage' as category,
    'usage:' || subscription_id || ':' || metric_code as key,
    case
        when is_known_subscription
            then format('%s %s of subscription %s outside its active periods: not invoiced', quantity, metric_code, subscription_id)
        else format('%s %s of subscription %s, unknown to the catalog: not invoiced', quantity, metric_code, subscription_id)
    end as detail,
    quantity as amount
from unpriceable

union all

select
    'RECON-' || to_char(period_start, 'YYYY-MM') as recon_id,
    period_start,
    'Invoice' as category,
    'invoice:' || invoice_number as key,
    format(
        'issued invoice %s: total %s, lines %s + tax %s; credits %s, credit lines %s',
        invoice_number, total, lines_total, tax, credits, credit_lines
    ) as detail,
    total - (lines_total + tax) as amount
from invoice_mismatches
