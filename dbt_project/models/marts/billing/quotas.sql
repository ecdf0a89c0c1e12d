-- The usage limits in force (current catalog), one per subscription and event type, with the
-- metric they limit. active: the subscription has a row running at the run's as-of instant
-- (var as_of).

with

quotas as (

    select * from {{ ref('stg_catalog__quotas') }}

),

subscriptions as (

    select * from {{ ref('stg_catalog__subscriptions') }}

),

metrics as (

    select * from {{ ref('stg_catalog__metrics') }}

),

subscription_state as (

    select
        subscription_id,
        min(tenant_id) as tenant_id,
        bool_or(
            started_at <= {{ as_of() }}
            and (ended_at is null or ended_at > {{ as_of() }})
        ) as is_running
    from subscriptions
    group by 1

),

final as (

    select
        quotas.subscription_id,
        quotas.event_type,
        metrics.metric_code,
        subscription_state.tenant_id,
        quotas.limit_value,
        quotas.period,
        quotas.action,
        quotas.overage_unit_price,
        coalesce(subscription_state.is_running, false) as active
    from quotas
    left join metrics
        on metrics.event_type = quotas.event_type
    left join subscription_state
        on subscription_state.subscription_id = quotas.subscription_id

)

select * from final
