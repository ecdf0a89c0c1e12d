{#- Pricing reads the catalog snapshots as of a period's close (snapshots/_catalog__snapshots.yml).

    catalog_versions(relation, key): the snapshot's rows plus version_from / version_to, where
    the first version of each key counts as valid since the beginning of time (months closed
    before the first snapshot) and an open version until forever.
    catalog_version_valid(alias, at): the version of `alias` valid at `at` (a timestamptz). -#}
{% macro catalog_versions(relation, key) -%}
    select
        *,
        case
            when row_number() over (partition by {{ key | join(', ') }} order by dbt_valid_from) = 1
                then '-infinity'::timestamptz
            else dbt_valid_from
        end as version_from,
        coalesce(dbt_valid_to, 'infinity'::timestamptz) as version_to
    from {{ relation }}
{%- endmacro %}

{% macro catalog_version_valid(alias, at) -%}
    ({{ alias }}.version_from <= {{ at }} and {{ at }} < {{ alias }}.version_to)
{%- endmacro %}
