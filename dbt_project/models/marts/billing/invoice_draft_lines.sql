-- dbt's computed lines of every draft invoice (one per subscription and month): priced lines
-- (int_invoice_lines_priced), late-usage adjustments for months already issued
-- (int_adjustments_priced_for_late_usage), one credit line when catalog credits apply, and one
-- per manual credit used (int_credit_grants_applied_to_drafts, credit_grant_id set). line_no
-- orders them: base fees, usage per metric, overage, minimum-commitment true-up, adjustments,
-- credit, manual credits oldest first.
-- unit: the catalog metric's unit of a line's quantity (usage, overage, adjustment), for the
-- document to print quantities in it.
-- The emitter copies these into billing.invoice_line_items at issue, as they are.

with

lines as (

    select * from {{ ref('int_invoice_lines_priced') }}

),

adjustments as (

    select * from {{ ref('int_adjustments_priced_for_late_usage') }}

),

credits as (

    select * from {{ ref('int_credits_applied_to_invoices') }}

),

grants_used as (

    select * from {{ ref('int_credit_grants_applied_to_drafts') }}

),

invoices as (

    select * from {{ ref('int_invoices_configured') }}

),

metrics as (

    select * from {{ ref('stg_catalog__metrics') }}

),

credit_lines as (

    select
        invoice_id,
        9 as kind_order,
        cast(null as timestamptz) as segment_started_at,
        'credit' as kind,
        cast(null as text) as metric_code,
        'credits applied (' || credit_remaining::text || ' ' || currency || ' carried forward)' as description,
        cast(1 as numeric) as quantity,
        -credits_applied as unit_price,
        -credits_applied as amount,
        cast(null as uuid) as credit_grant_id
    from credits
    where credits_applied > 0

),

manual_credit_lines as (

    select
        invoice_id,
        10 as kind_order,
        granted_at as segment_started_at,  -- orders the grants oldest first
        'credit' as kind,
        cast(null as text) as metric_code,
        'Manual credit: ' || reason as description,
        cast(1 as numeric) as quantity,
        -amount as unit_price,
        -amount as amount,
        grant_id as credit_grant_id
    from grants_used

),

all_lines as (

    select *, cast(null as uuid) as credit_grant_id from lines
    union all
    select
        invoice_id, kind_order, segment_started_at, kind, metric_code, description, quantity, unit_price, amount,
        cast(null as uuid) as credit_grant_id
    from adjustments
    where invoice_id is not null
    union all
    select * from credit_lines
    union all
    select * from manual_credit_lines

),

final as (

    select
        all_lines.invoice_id,
        row_number() over (
            partition by all_lines.invoice_id
            order by all_lines.kind_order, all_lines.segment_started_at, all_lines.metric_code,
                all_lines.credit_grant_id
        ) as line_no,
        all_lines.kind,
        all_lines.metric_code,
        all_lines.description,
        all_lines.quantity,
        all_lines.unit_price,
        all_lines.amount,
        metrics.unit,
        all_lines.credit_grant_id,
        -- what the issued invoice records as used of that grant (billing.credit_applications)
        case when all_lines.credit_grant_id is not null then -all_lines.amount end as credit_grant_amount,
        invoices.subscription_id,
        invoices.tenant_id,
        invoices.period_start,
        invoices.currency
    from all_lines
    inner join invoices
        on invoices.invoice_id = all_lines.invoice_id
    left join metrics
        on metrics.metric_code = all_lines.metric_code

)

select * from final
