{#- Incremental strategy 'replace_hours' for the hourly usage models (unique key ending in `hour`):
    dbt's delete+insert, with the delete bounded to the hours the new rows cover. Plain
    delete+insert matches the new rows against the whole target (a hash join over a sequential
    scan of every hour ever built, so the nightly build grew with history); bounded by
    min/max(hour) of the new rows, PostgreSQL reads the target through its index on `hour` and
    touches only the hours being replaced (the new day, and the few days late events reach back). -#}
{% macro get_incremental_replace_hours_sql(arg_dict) -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set key_csv = arg_dict["unique_key"] | join(", ") -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    delete from {{ target }} as dbt_internal_dest
    where dbt_internal_dest.hour >= (select min(hour) from {{ source }})
        and dbt_internal_dest.hour <= (select max(hour) from {{ source }})
        and ({{ key_csv }}) in (select {{ key_csv }} from {{ source }});

    insert into {{ target }} ({{ columns }})
    (
        select {{ columns }}
        from {{ source }}
    )
{%- endmacro %}
