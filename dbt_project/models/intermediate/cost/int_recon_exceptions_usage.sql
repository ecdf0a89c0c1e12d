{#- Usage exceptions: per month, accepted events (stg_events__usage_events) against the events
    counted in usage_hourly. A difference means usage_hourly is stale or lost events. -#}
with

events as (

    select * from {{ ref('stg_events__usage_events') }}

),

hourly as (

    select * from {{ ref('usage_hourly') }}

),

accepted as (

    select
        cast(date_trunc('month', occurred_at at time zone 'UTC') as date) as period_start,
        count(*) as event_count
    from events
    group by 1

),

aggregated as (

    select
        cast(date_trunc('month', hour at time zone 'UTC') as date) as period_start,
        sum(event_count) as event_count
    from hourly
    group by 1

),

compared as (

    select
        coalesce(accepted.period_start, aggregated.period_start) as period_start,
        coalesce(accepted.event_count, 0) as accepted_events,
        coalesce(aggregated.event_count, 0) as hourly_events
    from accepted
    full outer join aggregated
        on accepted.period_start = aggregated.period_start

)

select
    'RECON-' || to_char(period_start, 'YYYY-MM') as recon_id,
    period_start,
    'Usage' as category,
    'events:' || to_char(period_start, 'YYYY-MM') as key,
    format('%s accepted events vs %s in usage_hourly', accepted_events, hourly_events) as detail,
    cast(hourly_events - accepted_events as numeric) as amount
from compared
where accepted_events <> hourly_events
