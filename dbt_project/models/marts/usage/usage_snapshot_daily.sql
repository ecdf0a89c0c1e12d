{#- Month-to-date usage per tenant and metric at the end of each day, against the tenant's
    monthly quota: metric_value is the running sum (count/sum metrics) or running max (max
    metrics) since the first of the month; cap_value is the sum of the tenant's subscriptions'
    monthly quota limits on the metric's event type (null when none); utilization =
    metric_value / cap_value. Days run from the tenant's first usage in the month to the last
    day with data (or the month's end). cap_value comes from the catalog's quotas until the
    billing area's quotas mart exists. -#}
with

metered as (

    select * from {{ ref('usage_metered_hourly') }}

),

subscriptions as (

    select distinct subscription_id, tenant_id
    from {{ ref('stg_catalog__subscriptions') }}

),

quotas as (

    select * from {{ ref('stg_catalog__quotas') }}
    where period = 'month'

),

metrics as (

    select * from {{ ref('stg_catalog__metrics') }}

),

daily as (

    select
        subscriptions.tenant_id,
        metered.metric_code,
        metered.aggregation,
        cast(metered.hour at time zone 'UTC' as date) as usage_date,
        case
            when metered.aggregation = 'max' then max(metered.quantity)
            else sum(metered.quantity)
        end as day_value
    from metered
    inner join subscriptions
        on metered.subscription_id = subscriptions.subscription_id
    group by 1, 2, 3, 4

),

months as (

    select
        tenant_id,
        metric_code,
        aggregation,
        cast(date_trunc('month', usage_date) as date) as month,
        min(usage_date) as first_date
    from daily
    group by 1, 2, 3, 4

),

spine as (

    select
        months.tenant_id,
        months.metric_code,
        months.aggregation,
        months.month,
        cast(day as date) as snapshot_date
    from months
    cross join (select max(usage_date) as last_date from daily) as data_end
    cross join lateral generate_series(
        months.first_date,
        least(cast(months.month + interval '1 month - 1 day' as date), data_end.last_date),
        interval '1 day'
    ) as day

),

running as (

    select
        spine.tenant_id,
        spine.metric_code,
        spine.snapshot_date,
        spine.month,
        case
            when spine.aggregation = 'max' then max(daily.day_value) over month_to_date
            else coalesce(sum(daily.day_value) over month_to_date, 0)
        end as metric_value
    from spine
    left join daily
        on spine.tenant_id = daily.tenant_id
        and spine.metric_code = daily.metric_code
        and spine.snapshot_date = daily.usage_date
    window month_to_date as (
        partition by spine.tenant_id, spine.metric_code, spine.month
        order by spine.snapshot_date
        rows between unbounded preceding and current row
    )

),

caps as (

    select
        subscriptions.tenant_id,
        metrics.metric_code,
        sum(quotas.limit_value) as cap_value
    from quotas
    inner join subscriptions
        on quotas.subscription_id = subscriptions.subscription_id
    inner join metrics
        on quotas.event_type = metrics.event_type
    group by 1, 2

),

final as (

    select
        running.tenant_id,
        running.metric_code,
        running.snapshot_date,
        running.month,
        running.metric_value,
        caps.cap_value,
        case when caps.cap_value > 0 then running.metric_value / caps.cap_value end as utilization
    from running
    left join caps
        on running.tenant_id = caps.tenant_id
        and running.metric_code = caps.metric_code

)

select * from final
