{#- Incremental: each build replaces exactly the hours touched by newly loaded events
    (macro usage_hours_to_rebuild), re-aggregating them from every accepted event, so a re-run
    or a late event never double-counts. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['subscription_id', 'event_type', 'hour'],
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['subscription_id', 'event_type', 'hour'], 'unique': True},
            {'columns': ['hour']},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_events__usage_events') }}

),

{% if is_incremental() %}
hours_to_rebuild as (

    {{ usage_hours_to_rebuild(ref('stg_events__usage_events')) }}

),

touched_events as (

    select events.*
    from hours_to_rebuild
    inner join events
        on events.occurred_at >= hours_to_rebuild.hour
        and events.occurred_at < hours_to_rebuild.hour + interval '1 hour'

),
{% else %}
touched_events as (

    select * from events

),
{% endif %}

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

select * from aggregated
