{#- Incremental: each build replaces exactly the hours touched by newly loaded events
    (macro usage_touched_hours_filter), re-aggregating them from every accepted event, so a re-run
    or a late event never double-counts. Strategy replace_hours (macro of that name): the delete
    reads only the hours being replaced, so the nightly build does not grow with history. -#}
{{
    config(
        materialized='incremental',
        tags=['heavy'],
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'replace_hours'),
        partition_by=(['usage_date'] if target.type == 'spark' else none),
        file_format='parquet',
        unique_key=['subscription_id', 'event_type', 'hour'],
        on_schema_change='append_new_columns',
        pre_hook="{{ summarize_brin(source('events', 'events')) }}",
        indexes=[
            {'columns': ['subscription_id', 'event_type', 'hour'], 'unique': True},
            {'columns': ['hour']},
            {'columns': ['last_loaded_at']},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_events__usage_events') }}

),

touched_events as (

    select * from events
    {% if is_incremental() %}
    where {{ usage_touched_hours_filter(ref('stg_events__usage_events')) }}
    {% endif %}

),

aggregated as (

    select
        subscription_id,
        event_type,
        date_trunc('hour', occurred_at) as hour,
        count(*) as event_count,
        coalesce(sum(tokens), 0) as total_tokens,
        max(loaded_at) as last_loaded_at,
        now() as updated_at
    from touched_events
    group by 1, 2, 3

)

select *{{ spark_partition_column('cast(hour as date)', 'usage_date') }}
from aggregated
