{#- The UTC hours an incremental usage model must re-aggregate: every hour holding an event
    loaded after the newest event the model has already seen (max of its last_loaded_at), late
    events included (they touch their own, older hours). The loader stamps loaded_at just before
    its commit; the window still starts `usage_lookback_minutes` (default 60) earlier, so a load
    that committed after a concurrent one (two partitions at once) is never missed.
    Re-aggregating an hour twice is harmless: it is replaced, never added to.
    `--vars '{usage_rebuild_from: "2025-03-01"}'` re-aggregates the hours of everything loaded
    since then (a repair); `--full-refresh` rebuilds all. Reads raw.events by loaded_at, then by
    timestamp (both indexed), so the cost follows what was loaded, not the history. -#}
{% macro usage_hours_to_rebuild(events_relation) -%}
    {%- set since = var('usage_rebuild_from', none) -%}
    select distinct date_trunc('hour', occurred_at) as hour
    from {{ events_relation }}
    where loaded_at > {% if since -%}
        cast('{{ since }}' as timestamptz)
    {%- else -%}
        (
            select coalesce(max(last_loaded_at), '-infinity'::timestamptz)
                   - interval '{{ var("usage_lookback_minutes", 60) }} minutes'
            from {{ this }}
        )
    {%- endif %}
{%- endmacro %}
