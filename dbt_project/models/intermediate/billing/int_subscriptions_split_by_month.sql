-- One row per subscription row (a plan period) and billing month it is active in: the segments
-- an invoice is made of. A plan change gives two segments in its month. Active days count UTC
-- dates from the segment's start date (inclusive) to its end date (exclusive), so a change at
-- midnight on the 15th gives 14 + 17 days in a 31-day month.
--
-- Months priced: from each row's start to its end, and for open rows through the month of the
-- run's as-of instant (var as_of, macros/as_of.sql), or the last month with usage if later.
-- Vars invoice_period_from / invoice_period_to (YYYY-MM-DD, first of a month, inclusive) narrow
-- the months, e.g. for one close or a benchmark.

with

subscriptions as (

    select * from {{ ref('stg_catalog__subscriptions') }}

),

usage as (

    select max(hour) as last_usage_hour from {{ ref('usage_metered_hourly') }}

),

horizon as (

    select
        greatest(
            date_trunc('month', {{ as_of() }} at time zone 'UTC'),
            date_trunc('month', usage.last_usage_hour at time zone 'UTC')
        )::date as last_period_start
    from usage

),

months as (

    select
        subscriptions.subscription_id,
        subscriptions.tenant_id,
        subscriptions.plan_id,
        subscriptions.started_at as segment_started_at,
        subscriptions.ended_at as segment_ended_at,
        period.period_start::date as period_start
    from subscriptions
    cross join horizon
    cross join lateral generate_series(
        date_trunc('month', subscriptions.started_at at time zone 'UTC'),
        coalesce(
            date_trunc('month', (subscriptions.ended_at - interval '1 microsecond') at time zone 'UTC'),
            horizon.last_period_start
        ),
        interval '1 month'
    ) as period (period_start)

),

bounded as (

    select
        *,
        (period_start + interval '1 month')::date as period_end,
        greatest(segment_started_at, period_start::timestamp at time zone 'UTC') as active_from,
        least(
            coalesce(segment_ended_at, 'infinity'::timestamptz),
            (period_start + interval '1 month')::timestamp at time zone 'UTC'
        ) as active_to
    from months
    where true
    {%- if var('invoice_period_from', none) %}
        and period_start >= cast('{{ var("invoice_period_from") }}' as date)
    {%- endif %}
    {%- if var('invoice_period_to', none) %}
        and period_start <= cast('{{ var("invoice_period_to") }}' as date)
    {%- endif %}

),

final as (

    select
        'D-' || to_char(period_start, 'YYYYMM') || '-' || subscription_id::text as invoice_id,
        subscription_id,
        segment_started_at,
        tenant_id,
        plan_id,
        period_start,
        period_end,
        active_from,
        active_to,
        (active_to at time zone 'UTC')::date - (active_from at time zone 'UTC')::date as active_days,
        period_end - period_start as days_in_month,
        -- The catalog is read as it was at the period's close.
        period_end::timestamp at time zone 'UTC' as priced_at,
        row_number() over (
            partition by subscription_id, period_start order by segment_started_at
        ) as segment_no
    from bounded
    where active_to > active_from

)

select * from final
