-- Revenue against allocated cloud cost per tenant and month, once cost allocation exists.
--
-- revenue: the invoices' pre-tax amount after credits (subtotal - credits) in the tenant's
-- currency, from invoice_header (issued figures where issued, else the draft's). Cost is
-- allocated in the CUR's currency, USD (fact_cost_allocated, quarantine pool excluded), so revenue
-- (and any cost in another currency) is converted with the indicative usd_per_unit of the
-- currencies seed: a reporting rate, never used to bill.
-- gross_margin = revenue_usd - allocated_cost; margin_pct = gross_margin / revenue_usd x 100.
-- A tenant with cost and no invoice (or the reverse) still has its row.

with

invoices as (

    select * from {{ ref('invoice_header') }}

),

allocated as (

    select * from {{ ref('fact_cost_allocated') }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

revenue as (

    select
        invoices.tenant_id,
        invoices.period_start as month,
        min(invoices.currency) as currency,
        sum(invoices.subtotal - invoices.credits) as revenue,
        sum((invoices.subtotal - invoices.credits) * currencies.usd_per_unit) as revenue_usd_exact,
        count(*) as invoice_count,
        count(*) filter (where invoices.status = 'blocked') as blocked_invoice_count
    from invoices
    left join currencies
        on currencies.currency = invoices.currency
    group by 1, 2

),

cost as (

    -- Cost allocated in another currency than USD (a CUR line's currency) is converted at the
    -- same indicative rate as revenue, never added to USD as it is.
    select
        allocated.tenant_id,
        allocated.billing_period as month,
        {{ round_money('sum(allocated.allocated_cost * currencies.usd_per_unit)', 2) }} as allocated_cost
    from allocated
    left join currencies
        on currencies.currency = allocated.currency
    where allocated.tenant_id is not null
    group by 1, 2

),

final as (

    select
        coalesce(revenue.tenant_id, cost.tenant_id) as tenant_id,
        coalesce(revenue.month, cost.month) as month,
        revenue.currency,
        coalesce(revenue.revenue, 0) as revenue,
        {{ round_money('coalesce(revenue.revenue_usd_exact, 0)', 2) }} as revenue_usd,
        coalesce(cost.allocated_cost, 0) as allocated_cost,
        {{ round_money('coalesce(revenue.revenue_usd_exact, 0)', 2) }} - coalesce(cost.allocated_cost, 0)
            as gross_margin,
        case
            when coalesce(revenue.revenue_usd_exact, 0) > 0 then
                round(
                    100 * ({{ round_money('revenue.revenue_usd_exact', 2) }} - coalesce(cost.allocated_cost, 0))
                    / {{ round_money('revenue.revenue_usd_exact', 2) }},
                    2
                )
        end as margin_pct,
        coalesce(revenue.invoice_count, 0) as invoice_count,
        coalesce(revenue.blocked_invoice_count, 0) as blocked_invoice_count
    from revenue
    full outer join cost
        on cost.tenant_id = revenue.tenant_id
        and cost.month = revenue.month

)

select * from final
