{#- Which events an incremental usage model must re-aggregate: those in every UTC hour that
    holds an event loaded after the newest event the model has already seen (max of its
    last_loaded_at), late events included (they touch their own, older hours). The loader
    stamps loaded_at when it starts writing; the window still starts `usage_lookback_minutes`
    (default 60) earlier, so a load that committed after a concurrent one is never missed.
    Re-aggregating an hour twice is harmless: it is replaced, never added to.

    `--vars '{usage_rebuild_from: "2025-03-01"}'` re-aggregates the hours of everything loaded
    since then (a repair); `--full-refresh` rebuilds all.

    The watermark and the touched hours are looked up when the model runs and written into its
    SQL as literal time ranges (consecutive hours merged), so PostgreSQL reads raw.events
    through its BRIN indexes on loaded_at and timestamp: the cost follows what was loaded,
    not the size of the history. -#}
{% macro usage_touched_hours_filter(events_relation, time_column='occurred_at') -%}
    {{ return(adapter.dispatch('usage_touched_hours_filter')(events_relation, time_column)) }}
{%- endmacro %}

{% macro default__usage_touched_hours_filter(events_relation, time_column) -%}
    {%- if not execute -%}
        false
    {%- else -%}
        {%- set since = var('usage_rebuild_from', none) -%}
        {%- if since -%}
            {%- set since_sql = "cast('" ~ since ~ "' as timestamptz)" -%}
        {%- else -%}
            {%- set watermark = run_query(
                "select coalesce(max(last_loaded_at), '-infinity'::timestamptz) - interval '"
                ~ var('usage_lookback_minutes', 60) ~ " minutes' from " ~ this
            ).columns[0].values()[0] -%}
            {%- set since_sql = "cast('" ~ watermark ~ "' as timestamptz)" -%}
        {%- endif -%}
        {%- set ranges = run_query(
            "with hours as (select distinct date_trunc('hour', occurred_at) as hour from "
            ~ events_relation ~ " where loaded_at > " ~ since_sql ~ "),"
            ~ " islands as (select hour, hour - row_number() over (order by hour) * interval '1 hour' as island"
            ~ " from hours)"
            ~ " select min(hour)::text, (max(hour) + interval '1 hour')::text from islands group by island order by 1"
        ) -%}
        {%- if ranges.rows | length == 0 -%}
            false
        {%- else -%}
            (
            {%- for row in ranges.rows %}
                {% if not loop.first %}or {% endif -%}
                ({{ time_column }} >= '{{ row[0] }}'::timestamptz and {{ time_column }} < '{{ row[1] }}'::timestamptz)
            {%- endfor %}
            )
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#- Spark (WAREHOUSE_ENGINE=spark): the models are partitioned by UTC day and insert_overwrite
    replaces whole partitions, so the filter takes every event of each UTC day that holds a touched
    hour; the same watermark (this model's max last_loaded_at less the lookback) finds them. -#}
{% macro spark__usage_touched_hours_filter(events_relation, time_column) -%}
    {%- if not execute -%}
        false
    {%- else -%}
        {%- set since = var('usage_rebuild_from', none) -%}
        {%- if since -%}
            {%- set since_sql = "cast('" ~ since ~ "' as timestamp)" -%}
        {%- else -%}
            {%- set since_sql = "(select coalesce(max(last_loaded_at), timestamp'0001-01-01 00:00:00') - interval "
                ~ var('usage_lookback_minutes', 60) ~ " minutes from " ~ this ~ ")" -%}
        {%- endif -%}
        {%- set days = run_query(
            "select distinct cast(cast(occurred_at as date) as string) from " ~ events_relation
            ~ " where loaded_at > " ~ since_sql ~ " order by 1"
        ).columns[0].values() -%}
        {%- if days | length == 0 -%}
            false
        {%- else -%}
            cast({{ time_column }} as date) in ({% for day in days %}date'{{ day }}'{{ ", " if not loop.last }}{% endfor %})
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
