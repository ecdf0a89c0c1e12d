{#- Billed cost per billing period, usage day, service, currency and tenant tag (null = untagged):
    the grain allocation works at, a few thousand rows however many line items. Amounts in
    different currencies are never summed together. -#}
with

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

aggregated as (

    select
        billing_period,
        usage_date,
        line_item_product_code as service,
        billing_currency as currency,
        resource_tags_user_tenant_id as tagged_tenant_id,
        sum(billed_cost) as cost,
        count(*) as line_count
    from cost_lines
    group by billing_period, usage_date, line_item_product_code, billing_currency, resource_tags_user_tenant_id

)

select * from aggregated
