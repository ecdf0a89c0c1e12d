{#- The UTC hours an incremental usage model must re-aggregate: every hour holding an event
    loaded since the model was last built (late events included: they touch their own, older
    hours). The window starts `usage_lookback_hours` (default 6) before the model's newest
    updated_at, so a load whose transaction began before that build but committed after it is
    still picked up; re-aggregating an hour twice is harmless (it is replaced, never added to).
    `--vars '{usage_rebuild_from: "2025-03-01"}'` re-aggregates the hours of everything loaded
    since then (a repair); `--full-refresh` rebuilds all. Reads raw.events by loaded_at, then by
    timestamp (both indexed), so the cost follows what was loaded, not the history. -#}
{% macro usage_hours_to_rebuild(events_relation) -%}
    {%- set since = var('usage_rebuild_from', none) -%}
    select distinct date_trunc('hour', occurred_at) as hour
    from {{ events_relation }}
    where loaded_at >= {% if since -%}
        cast('{{ since }}' as timestamptz)
    {%- else -%}
        (
            select coalesce(max(updated_at), '-infinity'::timestamptz)
                   - interval '{{ var("usage_lookback_hours", 6) }} hours'
            from {{ this }}
        )
    {%- endif %}
{%- endmacro %}
