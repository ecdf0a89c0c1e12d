{#- A cost model kept per billing period (fact_cost_raw) is incremental on the identity of what
    each period was built from: its live CUR delivery (raw.cur_deliveries.delivery_id; a new
    delivery or assembly of the month is a new id) and the tenant tag key (TENANT_TAG_KEY). A
    build re-derives exactly the periods whose live delivery or tag key differs from the one the
    model holds, replacing each whole (delete+insert keyed on billing_period; on Spark
    insert_overwrite of its partition); a period whose delivery is unchanged is not touched, so a
    rebuild with nothing delivered writes nothing. Such a model keeps delivery_id, tenant_tag_key
    and the dbt invocation that derived the period (dbt_invocation_id) on its rows. A table built
    before it had tenant_tag_key is rebuilt whole: what it was built on is unknown.

    cost_periods_to_rebuild(column): the condition on `column` (a billing period) a build of the
    calling model reads its input with. On an incremental build the periods are looked up when
    the model runs and written in as constants (`false` when there are none), so the planner
    reads only their lines, or nothing: as a subquery it read every CUR line of every period to
    find that none was wanted. -#}
{% macro cost_periods_to_rebuild(column) -%}
    {#- No alias right after the ref: `dbt run --empty` renders it as an aliased subquery. -#}
    {%- set live -%}
        select billing_period, delivery_id from {{ ref('stg_cur__deliveries') }} where is_live
    {%- endset -%}
    {%- if not (execute and is_incremental()
        and 'tenant_tag_key' in (adapter.get_columns_in_relation(this) | map(attribute='name') | list)) -%}
        {{ column }} in (select live.billing_period from ({{ live }}) as live)
    {%- else -%}
        {%- set changed -%}
            select live.billing_period
            from ({{ live }}) as live
            where not exists (
                select 1
                from {{ this }} as built
                where built.billing_period = live.billing_period
                    and built.delivery_id = live.delivery_id
                    and built.tenant_tag_key = {{ cur_tag_key() }}
            )
            order by 1
        {%- endset -%}
        {{ cost_periods_literal(column, run_query(changed).columns[0].values()) }}
    {%- endif -%}
{%- endmacro %}


{#- `column in (<the periods as date constants>)`, or `false` when there are none. -#}
{% macro cost_periods_literal(column, periods) -%}
    {%- if periods | length == 0 -%}
        false
    {%- else -%}
        {{ column }} in ({% for period in periods %}cast('{{ period }}' as date){{ ', ' if not loop.last }}{% endfor %})
    {%- endif -%}
{%- endmacro %}


{#- The tests of a model whose rows are per billing period, derived from that period's delivery
    alone (meta `cost_periods_tested`: `column` holds the period, `built_by` names the
    per-period incremental model whose rows carry the dbt invocation that derived them:
    fact_cost_raw, and the focus_costs view over it),
    read only the periods derived by this invocation, in a `dbt build` that builds `built_by`
    (dbt runs a model's tests after it and its parents): the other periods are the rows tested
    when they were built and not touched since. Any other invocation (`dbt test`, the quality
    suites, a build that does not build `built_by`) tests every period. Returns a SQL condition,
    or none. -#}
{% macro cost_periods_tested_condition(test) -%}
    {%- set attached = test.attached_node if execute else none -%}
    {%- if not execute or not attached -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(cost_periods_tested_condition_of(attached)) -}}
{%- endmacro %}


{#- The same for a singular test reading model `unique_id` (`where` it reads it with), and
    every period as well when the build also builds one of `unless_built` (the seeds it checks
    the rows against: a changed seed concerns every period). -#}
{% macro cost_periods_tested_condition_of(unique_id, unless_built=[]) -%}
    {%- if not execute or flags.WHICH != 'build' or unique_id not in graph.nodes -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- for other in unless_built if other in selected_resources -%}
        {{- return(none) -}}
    {%- endfor -%}
    {%- set scope = graph.nodes[unique_id].config.meta.get('cost_periods_tested') -%}
    {%- set built_by = 'model.meterline.' ~ (scope or {}).get('built_by', '') -%}
    {%- if not scope or built_by not in selected_resources -%}
        {{- return(none) -}}
    {%- endif -%}
    {#- Which periods: one probe per live period through built_by's index on billing_period (a
        period is replaced whole, so its first row tells which invocation derived it). They are
        written into the test as constants, which the planner pushes down to the period's rows
        (or, when there are none, prunes the test's read entirely); a subquery it would not. -#}
    {%- set probe -%}
        select live.billing_period
        from {{ graph.nodes['model.meterline.stg_cur__deliveries'].relation_name }} as live
        cross join lateral (
            select built.dbt_invocation_id
            from {{ graph.nodes[built_by].relation_name }} as built
            where built.billing_period = live.billing_period
            limit 1
        ) as first_row
        where live.is_live and first_row.dbt_invocation_id = '{{ invocation_id }}'
        order by 1
    {%- endset -%}
    {{- return(cost_periods_literal(scope.column, run_query(probe).columns[0].values()) | trim) -}}
{%- endmacro %}


{#- dbt's get_where_subquery (how a generic test reads the model it tests, with the test's
    `where` config), adding cost_periods_tested_condition. -#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- if config.get('where') -%}
        {%- do conditions.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- set scope = cost_periods_tested_condition(model) -%}
    {%- if scope -%}
        {%- do conditions.append(scope) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
