{#- Billable quantity per subscription, metric and hour, by the metric's definition in the
    catalog: count of events, or sum / max of a numeric property. Incremental like
    usage_hourly (same hours re-aggregated). A metric added to the catalog later needs a
    --full-refresh to cover hours built before it existed. -#}
{{
    config(
        materialized='incremental',
        tags=['heavy'],
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'replace_hours'),
        partition_by=(['usage_date'] if target.type == 'spark' else none),
        file_format='parquet',
        unique_key=['subscription_id', 'metric_code', 'hour'],
        on_schema_change='append_new_columns',
        pre_hook="{{ summarize_brin(source('events', 'events')) }}",
        indexes=[
            {'columns': ['subscription_id', 'metric_code', 'hour'], 'unique': True},
            {'columns': ['hour']},
            {'columns': ['last_loaded_at']},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_events__usage_events') }}

),

metrics as (

    select * from {{ ref('stg_catalog__metrics') }}

),

touched_events as (

    select * from events
    {% if is_incremental() %}
    where {{ usage_touched_hours_filter(ref('stg_events__usage_events')) }}
    {% endif %}

),

measured as (

    select
        touched_events.subscription_id,
        metrics.metric_code,
        metrics.aggregation,
        metrics.unit,
        touched_events.event_type,
        date_trunc('hour', touched_events.occurred_at) as hour,
        touched_events.loaded_at,
        {{ json_number('touched_events.properties', 'metrics.property') }} as property_value
    from touched_events
    inner join metrics
        on touched_events.event_type = metrics.event_type

),

aggregated as (

    select
        subscription_id,
        metric_code,
        hour,
        event_type,
        aggregation,
        unit,
        case aggregation
            when 'count' then cast(count(*) as {{ exact_numeric() }})
            when 'sum' then coalesce(sum(property_value), 0)
            when 'max' then coalesce(max(property_value), 0)
        end as quantity,
        count(*) as event_count,
        max(loaded_at) as last_loaded_at,
        now() as updated_at
    from measured
    group by subscription_id, metric_code, hour, event_type, aggregation, unit

)

select *{{ spark_partition_column('cast(hour as date)', 'usage_date') }}
from aggregated
