-- One row per draft invoice (subscription and month) with every figure of the draft as dbt
-- priced it: the only place invoice money is computed. The gate checks these columns, the
-- emitter copies them (and invoice_draft_lines) as they are; invoice_header shows them with the
-- draft's current state.
--
-- Figures (DESIGN.md "Money and time"): subtotal = the rounded lines before credits; credits =
-- the catalog credits and manual credits used (lines of kind credit), never above the subtotal;
-- tax = the rate of the catalog snapshot valid at the period's close x (subtotal - credits),
-- rounded half-up to the minor unit; total = subtotal - credits + tax.
--
-- Zero invoices (is_zero_invoice): a draft with nothing to bill, no fee and no usage (total 0 and
-- no line of non-zero amount; a draft whose charges credits reduce to 0 is not one). Unless var
-- issue_zero_invoices (env ISSUE_ZERO_INVOICES) is true, such a draft is not issued (is_skipped,
-- skip_reason): the emitter skips it and invoice_header shows it as skipped, so a close accounts
-- for every draft. A draft with a pricing error is blocked, never skipped.
--
-- content_hash fingerprints the draft's figures and lines: the gate records it, and the emitter
-- issues a draft only while it is unchanged.
--
-- Plausibility (needs_review, plausibility_errors): a draft is held for review, not priced
-- differently, when a figure cannot be represented exactly downstream (an amount of 10^15 or
-- more in the invoice currency, a quantity of 10^20 or more: every figure then fits Python's
-- 28-digit Decimal with 6 decimals), when its total exceeds the hard ceiling (var
-- plausibility_max_total_usd at the currencies seed's reference rate), or when its total or a
-- metric's quantity is more than plausibility_median_multiple times the subscription's median
-- over the previous plausibility_history_months months (with at least plausibility_min_months
-- of history). The gate blocks such a draft on its own (check `plausibility`, overridable).

{%- set multiple = var('plausibility_median_multiple', 10) %}
{%- set history_months = var('plausibility_history_months', 6) %}
{%- set min_months = var('plausibility_min_months', 3) %}
{%- set max_total_usd = var('plausibility_max_total_usd', 1000000) %}
{%- set issue_zero_invoices = var('issue_zero_invoices', false) | string | lower in ('true', '1', 'yes') %}

with

invoices as (

    select * from {{ ref('int_invoices_configured') }}

),

lines as (

    select * from {{ ref('invoice_draft_lines') }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

line_totals as (

    select
        invoice_id,
        coalesce(sum(amount) filter (where kind <> 'credit'), 0) as subtotal,
        coalesce(-sum(amount) filter (where kind = 'credit'), 0) as credits,
        count(*) as line_count,
        count(*) filter (where amount <> 0) as valued_line_count,
        coalesce(max(abs(amount)), 0) as max_abs_amount,
        coalesce(max(abs(quantity)), 0) as max_abs_quantity,
        string_agg(
            concat_ws('|', line_no, kind, metric_code, description, quantity, unit_price, amount, credit_grant_id),
            e'\n' order by line_no
        ) as lines_text
    from lines
    group by 1

),

metric_quantities as (

    select
        invoice_id,
        subscription_id,
        period_start,
        metric_code,
        sum(quantity) as quantity
    from lines
    where kind in ('usage', 'overage') and metric_code is not null
    group by 1, 2, 3, 4

),

figures as (

    select
        invoices.*,
        coalesce(line_totals.subtotal, 0) as subtotal,
        coalesce(line_totals.credits, 0) as credits,
        {{ round_money(
            'invoices.tax_rate * (coalesce(line_totals.subtotal, 0) - coalesce(line_totals.credits, 0))',
            'invoices.minor_units'
        ) }} as tax,
        coalesce(line_totals.line_count, 0) as line_count,
        coalesce(line_totals.valued_line_count, 0) as valued_line_count,
        coalesce(line_totals.max_abs_amount, 0) as max_abs_amount,
        coalesce(line_totals.max_abs_quantity, 0) as max_abs_quantity,
        line_totals.lines_text
    from invoices
    left join line_totals
        on line_totals.invoice_id = invoices.invoice_id

),

totals as (

    select
        figures.*,
        figures.subtotal - figures.credits + figures.tax as total
    from figures

),

total_history as (

    select
        current_month.invoice_id,
        count(*) as months,
        percentile_cont(0.5) within group (order by earlier.total) as median_total
    from totals as current_month
    inner join totals as earlier
        on earlier.subscription_id = current_month.subscription_id
        and earlier.period_start < current_month.period_start
        and earlier.period_start >= current_month.period_start - interval '{{ history_months }} months'
        and earlier.total is not null
    group by 1

),

quantity_history as (

    select
        current_month.invoice_id,
        current_month.metric_code,
        current_month.quantity,
        count(*) as months,
        percentile_cont(0.5) within group (order by earlier.quantity) as median_quantity
    from metric_quantities as current_month
    inner join metric_quantities as earlier
        on earlier.subscription_id = current_month.subscription_id
        and earlier.metric_code = current_month.metric_code
        and earlier.period_start < current_month.period_start
        and earlier.period_start >= current_month.period_start - interval '{{ history_months }} months'
    group by 1, 2, 3

),

implausible as (

    select
        totals.invoice_id,
        1 as reason_order,
        'a figure cannot be represented exactly (largest amount '
        || trim(to_char(totals.max_abs_amount, '9.999EEEE')) || ' ' || totals.currency
        || ', largest quantity ' || trim(to_char(totals.max_abs_quantity, '9.999EEEE')) || ')' as reason
    from totals
    where totals.max_abs_amount >= 1e15 or totals.max_abs_quantity >= 1e20

    union all

    select
        totals.invoice_id,
        2,
        'total ' || totals.total::text || ' ' || totals.currency || ' exceeds the ceiling of '
        || '{{ max_total_usd }} USD (plausibility_max_total_usd)'
    from totals
    inner join currencies
        on currencies.currency = totals.currency
    where totals.total * currencies.usd_per_unit > {{ max_total_usd }}
        and totals.max_abs_amount < 1e15

    union all

    select
        totals.invoice_id,
        3,
        'total ' || totals.total::text || ' ' || totals.currency || ' is more than {{ multiple }} x the median '
        || round(total_history.median_total::numeric, totals.minor_units)::text || ' of the previous '
        || total_history.months || ' months'
    from totals
    inner join total_history
        on total_history.invoice_id = totals.invoice_id
    where total_history.months >= {{ min_months }}
        and totals.total > {{ multiple }} * total_history.median_total::numeric
        and total_history.median_total > 0

    union all

    select
        quantity_history.invoice_id,
        4,
        quantity_history.metric_code || ' quantity ' || quantity_history.quantity::text
        || ' is more than {{ multiple }} x the median ' || quantity_history.median_quantity::numeric::text
        || ' of the previous ' || quantity_history.months || ' months'
    from quantity_history
    where quantity_history.months >= {{ min_months }}
        and quantity_history.quantity > {{ multiple }} * quantity_history.median_quantity::numeric
        and quantity_history.median_quantity > 0

),

review as (

    select
        invoice_id,
        string_agg(reason, '; ' order by reason_order, reason) as plausibility_errors
    from implausible
    group by 1

),

final as (

    select
        totals.invoice_id,
        totals.tenant_id,
        totals.subscription_id,
        totals.period_start,
        totals.period_end,
        totals.service_start,
        totals.service_end,
        totals.priced_at,
        totals.currency,
        totals.minor_units,
        totals.country,
        totals.buyer_address,
        totals.buyer_vat_id,
        totals.tax_date,
        totals.tax_rate,
        totals.subtotal,
        totals.credits,
        totals.tax,
        totals.total,
        totals.line_count,
        totals.active_days,
        totals.segment_count,
        totals.has_pricing_error,
        totals.pricing_errors,
        review.invoice_id is not null as needs_review,
        review.plausibility_errors,
        coalesce(totals.total = 0 and totals.valued_line_count = 0, false) as is_zero_invoice,
        coalesce(
            totals.total = 0 and totals.valued_line_count = 0 and not totals.has_pricing_error
            and not {{ issue_zero_invoices }},
            false
        ) as is_skipped,
        case
            when totals.total = 0 and totals.valued_line_count = 0 and not totals.has_pricing_error
                and not {{ issue_zero_invoices }}
                then 'zero invoice: no fee and no usage (issue_zero_invoices is off)'
        end as skip_reason,
        md5(
            concat_ws(
                '|', totals.invoice_id, totals.tenant_id, totals.subscription_id, totals.period_start,
                totals.period_end, totals.currency, totals.tax_rate, totals.subtotal, totals.credits, totals.tax,
                totals.total, totals.pricing_errors
            )
            || e'\n' || coalesce(totals.lines_text, '')
        ) as content_hash
    from totals
    left join review
        on review.invoice_id = totals.invoice_id

)

select * from final
