with

hourly as (

    select * from {{ ref('usage_hourly') }}

),

monthly as (

    select
        subscription_id,
        event_type,
        cast(date_trunc('month', hour at time zone 'UTC') as date) as month,
        sum(event_count) as event_count,
        sum(total_tokens) as total_tokens,
        max(updated_at) as updated_at
    from hourly
    group by 1, 2, 3

)

select * from monthly
