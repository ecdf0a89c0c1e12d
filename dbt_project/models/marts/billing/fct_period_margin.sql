-- The period's gross margin, defined once for the close report and the demo's summary.
--
-- revenue_usd: the tenants' revenue (fct_tenant_margin.revenue_usd: pre-tax after credits, at the
-- currencies seed's indicative USD rate), summed so the tenant table adds up to it.
-- cloud_cost: every cost line of the period's latest CUR delivery (fact_cost_raw, billed cost, in
-- USD at the same rate), summed exactly and rounded once: the AWS bill. Not the sum of the
-- allocation, which conserves cost per service to the cent and so is a cent or two off it.
-- allocated_cost: what fct_tenant_margin charges the tenants; unallocated_cost: the rest of
-- cloud_cost (the quarantine pool, and that per-service rounding), so allocated + unallocated =
-- cloud_cost.
-- gross_margin = revenue_usd - cloud_cost: every cloud cost is the company's, allocated or not.

with

tenant_margins as (

    select * from {{ ref('fct_tenant_margin') }}

),

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

cost as (

    select
        cost_lines.billing_period as month,
        {{ round_money('sum(cost_lines.billed_cost * currencies.usd_per_unit)', 2) }} as cloud_cost
    from cost_lines
    left join currencies
        on currencies.currency = cost_lines.billing_currency
    group by 1

),

revenue as (

    select
        month,
        sum(revenue_usd) as revenue_usd,
        sum(allocated_cost) as allocated_cost
    from tenant_margins
    group by 1

),

final as (

    select
        coalesce(revenue.month, cost.month) as month,
        coalesce(revenue.revenue_usd, 0) as revenue_usd,
        coalesce(cost.cloud_cost, 0) as cloud_cost,
        coalesce(revenue.allocated_cost, 0) as allocated_cost,
        coalesce(cost.cloud_cost, 0) - coalesce(revenue.allocated_cost, 0) as unallocated_cost,
        coalesce(revenue.revenue_usd, 0) - coalesce(cost.cloud_cost, 0) as gross_margin,
        case
            when coalesce(revenue.revenue_usd, 0) > 0 then
                round(100 * (revenue.revenue_usd - coalesce(cost.cloud_cost, 0)) / revenue.revenue_usd, 2)
        end as margin_pct
    from revenue
    full outer join cost
        on cost.month = revenue.month

)

select * from final
