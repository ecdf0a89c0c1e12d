{#- Each tenant's quantity of each metric per UTC day, from usage_metered_hourly through the
    subscription row active at that hour: the drivers of usage_share allocation. -#}
with

metered as (

    select * from {{ ref('usage_metered_hourly') }}

),

subscriptions as (

    select * from {{ ref('stg_catalog__subscriptions') }}

),

aggregated as (

    select
        cast(metered.hour at time zone 'UTC' as date) as usage_date,
        metered.metric_code,
        subscriptions.tenant_id,
        sum(metered.quantity) as quantity
    from metered
    inner join subscriptions
        on metered.subscription_id = subscriptions.subscription_id
        and metered.hour >= subscriptions.started_at
        and (subscriptions.ended_at is null or metered.hour < subscriptions.ended_at)
    group by 1, 2, 3

)

select * from aggregated
where quantity > 0
