{#- Tagging exceptions: untagged cost per period and service (the tenant tag is missing, so the
    cost is allocated by rule or quarantined), and tags naming a tenant the catalog does not know. -#}
with

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

tenants as (

    select * from {{ ref('stg_catalog__tenants') }}

),

untagged as (

    select
        'RECON-' || to_char(billing_period, 'YYYY-MM') as recon_id,
        billing_period as period_start,
        'Tagging' as category,
        'untagged:' || line_item_product_code as key,
        format(
            '%s: %s line(s) without the tenant tag, %s billed',
            line_item_product_code, count(*), {{ round_money('sum(billed_cost)', 2) }}
        ) as detail,
        {{ round_money('sum(billed_cost)', 2) }} as amount
    from cost_lines
    where resource_tags_user_tenant_id is null
    group by billing_period, line_item_product_code
    having sum(billed_cost) <> 0

),

unknown_tenants as (

    select
        'RECON-' || to_char(cost_lines.billing_period, 'YYYY-MM') as recon_id,
        cost_lines.billing_period as period_start,
        'Tagging' as category,
        'unknown_tenant:' || cost_lines.resource_tags_user_tenant_id as key,
        format(
            'tag %s names no tenant in the catalog: %s line(s), %s billed (quarantined)',
            cost_lines.resource_tags_user_tenant_id, count(*), {{ round_money('sum(cost_lines.billed_cost)', 2) }}
        ) as detail,
        {{ round_money('sum(cost_lines.billed_cost)', 2) }} as amount
    from cost_lines
    left join tenants
        on cost_lines.resource_tags_user_tenant_id = tenants.tenant_id
    where cost_lines.resource_tags_user_tenant_id is not null and tenants.tenant_id is null
    group by cost_lines.billing_period, cost_lines.resource_tags_user_tenant_id

)

select * from untagged
union all
select * from unknown_tenants
