-- How much credit each draft invoice uses. A tenant's credits (raw.catalog_credits, in one
-- currency) form a pool used by its invoices in that currency in order (period, subscription):
-- a credit counts for invoices whose period ends after it was granted; each invoice takes at
-- most its pre-tax subtotal, so no invoice goes negative, and the rest carries forward.
--
-- The greedy "take min(subtotal, what is left)" in closed form: with S_i the running subtotal and
-- C_i the running credit granted up to invoice i, the running amount applied is
-- A_i = S_i + min(0, min over k <= i of (C_k - S_k)); invoice i applies A_i - A_(i-1).
--
-- Manual credits an operator grants (billing.credit_grants) are applied by the emitter at issue,
-- not here.

with

lines as (

    select invoice_id, amount from {{ ref('int_invoice_lines_priced') }}
    union all
    select invoice_id, amount from {{ ref('int_adjustments_priced_for_late_usage') }}
    where invoice_id is not null

),

invoices as (

    select * from {{ ref('int_invoices_configured') }}

),

credits as (

    select * from {{ ref('stg_catalog__credits') }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

subtotals as (

    select
        invoices.invoice_id,
        invoices.tenant_id,
        invoices.currency,
        invoices.minor_units,
        invoices.period_start,
        invoices.period_end,
        invoices.subscription_id,
        coalesce(sum(lines.amount), 0) as subtotal
    from invoices
    left join lines
        on lines.invoice_id = invoices.invoice_id
    where invoices.currency is not null
    group by 1, 2, 3, 4, 5, 6, 7

),

tenant_credits as (

    select
        credits.tenant_id,
        credits.currency,
        credits.created_at,
        {{ round_money('credits.amount', 'currencies.minor_units') }} as amount
    from credits
    inner join currencies
        on currencies.currency = credits.currency

),

ordered as (

    select
        subtotals.*,
        sum(subtotals.subtotal) over running as running_subtotal,
        (
            select coalesce(sum(tenant_credits.amount), 0)
            from tenant_credits
            where tenant_credits.tenant_id = subtotals.tenant_id
                and tenant_credits.currency = subtotals.currency
                and tenant_credits.created_at < subtotals.period_end::timestamp at time zone 'UTC'
        ) as running_granted
    from subtotals
    window running as (
        partition by subtotals.tenant_id, subtotals.currency
        order by subtotals.period_start, subtotals.subscription_id
        rows between unbounded preceding and current row
    )

),

applied as (

    select
        *,
        running_subtotal + least(0, min(running_granted - running_subtotal) over running) as running_applied
    from ordered
    window running as (
        partition by tenant_id, currency
        order by period_start, subscription_id
        rows between unbounded preceding and current row
    )

),

final as (

    select
        invoice_id,
        tenant_id,
        currency,
        subtotal,
        -- Already whole minor units; round_money only gives every row the currency's scale.
        {{ round_money('running_applied - coalesce(lag(running_applied) over (
            partition by tenant_id, currency order by period_start, subscription_id
        ), 0)', 'minor_units') }} as credits_applied,
        {{ round_money('running_granted - running_applied', 'minor_units') }} as credit_remaining
    from applied

)

select * from final
