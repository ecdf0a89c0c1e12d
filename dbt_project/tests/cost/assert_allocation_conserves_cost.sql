{#- Allocation conserves cost (DESIGN.md): per billing period and service, the allocated cost
    (quarantine pool included) equals the raw CUR billed cost rounded to the cent, per currency. Computed from
    fact_cost_raw directly, so a join that drops or duplicates cost in the allocation fails here.
    Returns the period-services that differ. -#}
with

raw as (

    select
        billing_period,
        line_item_product_code as service,
        billing_currency as currency,
        {{ round_money('sum(billed_cost)', 2) }} as raw_cost
    from {{ ref('fact_cost_raw') }}
    group by 1, 2, 3

),

allocated as (

    select
        billing_period,
        service,
        currency,
        sum(allocated_cost) as allocated_cost
    from {{ ref('fact_cost_allocated') }}
    group by 1, 2, 3

)

select
    coalesce(raw.billing_period, allocated.billing_period) as billing_period,
    coalesce(raw.service, allocated.service) as service,
    coalesce(raw.currency, allocated.currency) as currency,
    raw.raw_cost,
    allocated.allocated_cost
from raw
full outer join allocated
    on raw.billing_period = allocated.billing_period
    and raw.service = allocated.service
    and raw.currency = allocated.currency
where raw.raw_cost is distinct from allocated.allocated_cost
