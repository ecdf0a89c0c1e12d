{#- Tenant-facing marts (README "Tenant-scoped access", include/meterline/sql/080_access.sql).

    A table materialisation builds a new table, swaps it in and drops the old one with every view
    depending on it: policies on the old table and the tenant view over it would be gone after
    each build. So every mart runs this post-hook (dbt_project.yml), and for the marts listed in
    tenant_access_specs() it puts row-level security back on the table dbt just built and creates
    the tenant view again, inside the model's transaction (before dbt drops the old table): the
    new table is never readable without its policies, and the view never goes missing.
    Marts not listed: the hook renders nothing.

    rows: which rows the tenant sees, a predicate on the mart's columns (tenant.tenant_of /
    tenant.subscriptions_of name the current tenant); view: the tenant schema's view name;
    columns: what the tenant sees. -#}
{% macro tenant_access_specs() %}
    {% do return({
        'usage_daily': {
            'rows': 'subscription_id in (select tenant.subscriptions_of(current_user))',
            'view': 'usage_daily',
            'columns': ['subscription_id', 'event_type', 'day', 'event_count', 'total_tokens'],
            'description': "The tenant's usage per subscription, event type and UTC day (marts.usage_daily).",
        },
        'usage_monthly': {
            'rows': 'subscription_id in (select tenant.subscriptions_of(current_user))',
            'view': 'usage_monthly',
            'columns': ['subscription_id', 'event_type', 'month', 'event_count', 'total_tokens'],
            'description': "The tenant's usage per subscription, event type and UTC month (marts.usage_monthly).",
        },
        'usage_snapshot_daily': {
            'rows': 'tenant_id = (select tenant.tenant_of(current_user))',
            'view': 'quota_utilization',
            'columns': ['tenant_id', 'metric_code', 'snapshot_date', 'month', 'metric_value', 'cap_value', 'utilization'],
            'description': "The tenant's month-to-date usage per metric against its quota (marts.usage_snapshot_daily).",
        },
    }) %}
{% endmacro %}


{% macro tenant_access() %}
    {%- set spec = tenant_access_specs().get(this.identifier) -%}
    {%- if spec and this.schema == 'marts' -%}
        {%- set table = this.include(database=false) | string -%}
do $tenant_access$
begin
    -- A warehouse bootstrapped before 080_access.sql has no tenant schema: nothing to expose.
    if to_regprocedure('tenant.protect(regclass, text)') is null then
        raise notice 'tenant_access: 080_access.sql not applied; % has no tenant view', {{ tenant_sql_literal(table) }};
        return;
    end if;
    perform tenant.protect({{ tenant_sql_literal(table) }}, {{ tenant_sql_literal(spec.rows) }});
    perform tenant.expose(
        {{ tenant_sql_literal(spec.view) }},
        {{ tenant_sql_literal(table) }},
        array[{% for column in spec.columns %}{{ tenant_sql_literal(column) }}{{ ", " if not loop.last }}{% endfor %}],
        {{ tenant_sql_literal(spec.description) }}
    );
end
$tenant_access$
    {%- endif -%}
{% endmacro %}


{% macro tenant_sql_literal(value) -%}
    '{{ value | replace("'", "''") }}'
{%- endmacro %}
