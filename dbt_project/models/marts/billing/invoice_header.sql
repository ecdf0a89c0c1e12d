-- One row per subscription and month: the draft's figures (invoice_drafts) and its current
-- state, read live: a view over the drafts, the latest gate run and what was issued, so it is
-- current the moment the gate decides or the emitter issues, with no rebuild.
--
-- status: the live (not void) billing.invoices row's status when the month was issued (its
-- issued figures are shown; the draft's own stay in draft_*); otherwise `blocked` when the draft
-- has a pricing configuration error or the latest gate run of its period (ops.invoice_gate,
-- latest run by decided_at) has a failing, not overridden check of scope period or of scope
-- invoice naming it; otherwise `skipped` for a zero invoice that is not issued
-- (invoice_drafts.is_skipped: issue_zero_invoices is off); otherwise `open`. blocked_reason lists every reason.

{{ config(materialized='view') }}

with

drafts as (

    select * from {{ ref('invoice_drafts') }}

),

issued as (

    select * from {{ ref('stg_billing__invoices') }}

),

gate_checks as (

    select * from {{ ref('stg_ops__invoice_gate_checks') }}

),

latest_gate_runs as (

    select distinct on (period_start)
        period_start,
        run_id
    from gate_checks
    order by period_start, decided_at desc, gate_row_id desc

),

gate_blocks as (

    select
        drafts.invoice_id,
        string_agg(
            'gate: ' || gate_checks.check_name || coalesce(' (' || gate_checks.reason || ')', ''),
            '; ' order by gate_checks.scope desc, gate_checks.check_name
        ) as gate_reasons
    from drafts
    inner join latest_gate_runs
        on latest_gate_runs.period_start = drafts.period_start
    inner join gate_checks
        on gate_checks.run_id = latest_gate_runs.run_id
        and gate_checks.period_start = drafts.period_start
        and not gate_checks.passed
        and not gate_checks.overridden
        and (
            gate_checks.scope = 'period'
            or (gate_checks.scope = 'invoice' and gate_checks.invoice_id = drafts.invoice_id)
        )
    group by 1

),

live_issued as (

    select distinct on (subscription_id, period_start)
        *
    from issued
    where is_live
    order by subscription_id, period_start, issued_at desc

),

final as (

    select
        drafts.invoice_id,
        drafts.tenant_id,
        drafts.subscription_id,
        drafts.period_start,
        drafts.period_end,
        coalesce(live_issued.currency, drafts.currency) as currency,
        coalesce(live_issued.subtotal, drafts.subtotal) as subtotal,
        coalesce(live_issued.credits, drafts.credits) as credits,
        coalesce(live_issued.tax, drafts.tax) as tax,
        case when live_issued.invoice_id is null then drafts.total else live_issued.total end as total,
        case
            when live_issued.invoice_id is not null then live_issued.status
            when drafts.has_pricing_error or gate_blocks.gate_reasons is not null then 'blocked'
            when drafts.is_skipped then 'skipped'
            else 'open'
        end as status,
        case
            when live_issued.invoice_id is null
                then nullif(concat_ws('; ', drafts.pricing_errors, gate_blocks.gate_reasons), '')
        end as blocked_reason,
        drafts.subtotal as draft_subtotal,
        drafts.credits as draft_credits,
        drafts.tax as draft_tax,
        drafts.total as draft_total,
        drafts.tax_rate,
        drafts.tax_date,
        drafts.country,
        drafts.minor_units,
        drafts.active_days,
        drafts.segment_count,
        drafts.line_count,
        drafts.has_pricing_error,
        drafts.pricing_errors,
        drafts.needs_review,
        drafts.skip_reason,
        drafts.plausibility_errors,
        drafts.content_hash,
        live_issued.invoice_id as issued_invoice_id,
        live_issued.invoice_number,
        live_issued.issued_at
    from drafts
    left join gate_blocks
        on gate_blocks.invoice_id = drafts.invoice_id
    left join live_issued
        on live_issued.subscription_id = drafts.subscription_id
        and live_issued.period_start = drafts.period_start

)

select * from final
