{#- Billed CUR cost allocated per billing period, usage day, service, currency and tenant
    (tenant_id null: the quarantine pool), rounded to cents so that per service, currency and
    period the allocated cost, quarantine included, equals the raw cost rounded to the cent (a
    negative total, credits above usage, included). Rounding: every row is floored
    to the cent, then the cents left over (target minus the floored sum) go one each to the rows
    with the largest remainders, ties by usage_date, tenant_id, method: deterministic, and no row
    moves by more than a cent. -#}
with

allocated as (

    select * from {{ ref('int_costs_allocated_to_tenants') }}

),

daily_costs as (

    select * from {{ ref('int_costs_aggregated_to_days') }}

),

targets as (

    select
        billing_period,
        service,
        currency,
        {{ round_money('sum(cost)', 2) }} as target_cost
    from daily_costs
    group by billing_period, service, currency

),

floored as (

    select
        allocated.*,
        floor(allocated.exact_cost * 100) / 100 as floored_cost,
        allocated.exact_cost - floor(allocated.exact_cost * 100) / 100 as remainder
    from allocated

),

residues as (

    select
        floored.billing_period,
        floored.service,
        floored.currency,
        cast(round((targets.target_cost - sum(floored.floored_cost)) * 100) as bigint) as residue_cents
    from floored
    inner join targets
        on floored.billing_period = targets.billing_period
        and floored.service = targets.service
        and floored.currency = targets.currency
    group by floored.billing_period, floored.service, floored.currency, targets.target_cost

),

ranked as (

    select
        floored.*,
        residues.residue_cents,
        row_number() over (
            partition by floored.billing_period, floored.service, floored.currency
            order by floored.remainder desc, floored.usage_date, floored.tenant_id nulls last, floored.allocation_method
        ) as rank_up,
        row_number() over (
            partition by floored.billing_period, floored.service, floored.currency
            order by floored.remainder asc, floored.usage_date, floored.tenant_id nulls last, floored.allocation_method
        ) as rank_down
    from floored
    inner join residues
        on floored.billing_period = residues.billing_period
        and floored.service = residues.service
        and floored.currency = residues.currency

),

final as (

    select
        billing_period,
        usage_date,
        tenant_id,
        service,
        currency,
        round(
            floored_cost
            + case
                when residue_cents > 0 and rank_up <= residue_cents then 0.01
                when residue_cents < 0 and rank_down <= -residue_cents then -0.01
                else 0
            end,
            2
        ) as allocated_cost,
        exact_cost,
        allocation_method,
        rule_version,
        tenant_id is null as is_quarantined,
        quarantine_reason
    from ranked

)

select * from final
