{#- Exact (unrounded) allocation of each day's cost per service (DESIGN.md "Allocation"):
    - a line tagged with a known tenant goes to that tenant (method tag);
    - an untagged line follows the service's rule valid that day (the highest rule_version when
      two overlap): usage_share splits by each tenant's share of the driver metric that day,
      even splits across tenants with a subscription active that day;
    - everything else lands in the quarantine pool (tenant_id null) with its reason: no rule,
      a rule of method tag or unallocated, a rule with no driver usage or no active tenant that
      day, or a tag naming a tenant the catalog does not know.
    Each currency is allocated on its own (the same rule, the same weights): amounts in different
    currencies are never summed. fact_cost_allocated rounds these to cents, conserving each
    service's period total per currency. -#}
with

daily_costs as (

    select * from {{ ref('int_costs_aggregated_to_days') }}

),

tenants as (

    select * from {{ ref('stg_catalog__tenants') }}

),

rules as (

    select * from {{ ref('stg_catalog__allocation_rules') }}

),

subscriptions as (

    select * from {{ ref('stg_catalog__subscriptions') }}

),

driver_usage as (

    select * from {{ ref('int_tenant_driver_usage_aggregated_to_days') }}

),

tagged as (

    select
        daily_costs.billing_period,
        daily_costs.usage_date,
        daily_costs.service,
        daily_costs.currency,
        tenants.tenant_id,
        daily_costs.cost as exact_cost,
        case when tenants.tenant_id is null then 'quarantine' else 'tag' end as allocation_method,
        cast(null as int) as rule_version,
        case when tenants.tenant_id is null then 'unknown_tenant_tag' end as quarantine_reason
    from daily_costs
    left join tenants
        on daily_costs.tagged_tenant_id = tenants.tenant_id
    where daily_costs.tagged_tenant_id is not null

),

untagged as (

    select
        billing_period,
        usage_date,
        service,
        currency,
        sum(cost) as cost
    from daily_costs
    where tagged_tenant_id is null
    group by billing_period, usage_date, service, currency

),

rule_of_day as (

    select distinct on (untagged.billing_period, untagged.usage_date, untagged.service, untagged.currency)
        untagged.billing_period,
        untagged.usage_date,
        untagged.service,
        untagged.currency,
        untagged.cost,
        rules.rule_version,
        rules.method,
        rules.driver_metric
    from untagged
    left join rules
        on untagged.service = rules.service
        and untagged.usage_date >= rules.valid_from
        and (rules.valid_to is null or untagged.usage_date < rules.valid_to)
    order by
        untagged.billing_period, untagged.usage_date, untagged.service, untagged.currency,
        rules.rule_version desc nulls last

),

active_tenants as (

    select distinct
        days.usage_date,
        subscriptions.tenant_id
    from (select distinct usage_date from untagged) as days
    inner join subscriptions
        on subscriptions.started_at < cast(days.usage_date + 1 as timestamp) at time zone 'UTC'
        and (
            subscriptions.ended_at is null
            or subscriptions.ended_at > cast(days.usage_date as timestamp) at time zone 'UTC'
        )

),

weights as (

    select
        rule_of_day.billing_period,
        rule_of_day.usage_date,
        rule_of_day.service,
        rule_of_day.currency,
        active_tenants.tenant_id,
        cast(1 as numeric) as weight
    from rule_of_day
    inner join active_tenants
        on rule_of_day.usage_date = active_tenants.usage_date
    where rule_of_day.method = 'even'

    union all

    select
        rule_of_day.billing_period,
        rule_of_day.usage_date,
        rule_of_day.service,
        rule_of_day.currency,
        driver_usage.tenant_id,
        driver_usage.quantity as weight
    from rule_of_day
    inner join driver_usage
        on rule_of_day.usage_date = driver_usage.usage_date
        and rule_of_day.driver_metric = driver_usage.metric_code
    where rule_of_day.method = 'usage_share'

),

weight_totals as (

    select
        billing_period,
        usage_date,
        service,
        currency,
        sum(weight) as total_weight
    from weights
    group by billing_period, usage_date, service, currency

),

shared as (

    select
        weights.billing_period,
        weights.usage_date,
        weights.service,
        weights.currency,
        weights.tenant_id,
        rule_of_day.cost * weights.weight / weight_totals.total_weight as exact_cost,
        rule_of_day.method as allocation_method,
        rule_of_day.rule_version,
        cast(null as text) as quarantine_reason
    from weights
    inner join weight_totals
        on weights.billing_period = weight_totals.billing_period
        and weights.usage_date = weight_totals.usage_date
        and weights.service = weight_totals.service
        and weights.currency = weight_totals.currency
    inner join rule_of_day
        on weights.billing_period = rule_of_day.billing_period
        and weights.usage_date = rule_of_day.usage_date
        and weights.service = rule_of_day.service
        and weights.currency = rule_of_day.currency

),

quarantined as (

    select
        rule_of_day.billing_period,
        rule_of_day.usage_date,
        rule_of_day.service,
        rule_of_day.currency,
        cast(null as text) as tenant_id,
        rule_of_day.cost as exact_cost,
        'quarantine' as allocation_method,
        rule_of_day.rule_version,
        case
            when rule_of_day.rule_version is null then 'no_rule'
            when rule_of_day.method = 'unallocated' then 'rule_unallocated'
            when rule_of_day.method = 'tag' then 'untagged_under_tag_rule'
            when rule_of_day.method = 'usage_share' then 'no_driver_usage'
            when rule_of_day.method = 'even' then 'no_active_tenant'
            else 'unknown_method'
        end as quarantine_reason
    from rule_of_day
    left join weight_totals
        on rule_of_day.billing_period = weight_totals.billing_period
        and rule_of_day.usage_date = weight_totals.usage_date
        and rule_of_day.service = weight_totals.service
        and rule_of_day.currency = weight_totals.currency
    where weight_totals.total_weight is null or weight_totals.total_weight = 0

),

unioned as (

    select * from tagged
    union all
    select * from shared
    union all
    select * from quarantined

)

select
    billing_period,
    usage_date,
    service,
    currency,
    tenant_id,
    allocation_method,
    rule_version,
    quarantine_reason,
    sum(exact_cost) as exact_cost
from unioned
group by billing_period, usage_date, service, currency, tenant_id, allocation_method, rule_version, quarantine_reason
