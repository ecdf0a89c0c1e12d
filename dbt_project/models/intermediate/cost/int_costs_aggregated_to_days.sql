{#- Billed cost per billing period, usage day, service, currency and tenant tag (null = untagged):
    the grain allocation works at, a few thousand rows however many line items. Amounts in
    different currencies are never summed together.
    A table, incremental per billing period like fact_cost_raw (macros/cost_periods.sql): the
    allocation and its conservation test read it instead of every CUR line, and a build where no
    delivery changed re-reads no line. Each row keeps the delivery and tag key its period was
    aggregated from, and the dbt invocation that did it. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='billing_period',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['billing_period']}],
        post_hook="analyze {{ this }}",
    )
}}

with

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

periods_to_rebuild as (

    {{ cost_periods_to_rebuild() }}

),

aggregated as (

    select
        billing_period,
        usage_date,
        line_item_product_code as service,
        billing_currency as currency,
        resource_tags_user_tenant_id as tagged_tenant_id,
        sum(billed_cost) as cost,
        count(*) as line_count,
        delivery_id,
        tenant_tag_key,
        -- the dbt invocation that derived the period (cost_periods_tested_condition)
        '{{ invocation_id }}' as dbt_invocation_id
    from cost_lines
    where billing_period in (select periods_to_rebuild.billing_period from periods_to_rebuild)
    group by
        billing_period, usage_date, line_item_product_code, billing_currency, resource_tags_user_tenant_id,
        delivery_id, tenant_tag_key

)

select * from aggregated
