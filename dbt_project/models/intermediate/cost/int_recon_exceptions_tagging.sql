{#- Tagging exceptions: untagged cost per period, service and currency (the tenant tag is missing,
    so the cost is allocated by rule or quarantined), tags naming a tenant the catalog does not
    know, and tag keys that the live delivery of a period lost against the delivery before it
    (raw.cur_deliveries.tag_keys_removed: a tag column renamed or dropped, so the lines that
    carried it are untagged now). Keys get a currency suffix for currencies other than USD. -#}
with

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

tenants as (

    select * from {{ ref('stg_catalog__tenants') }}

),

deliveries as (

    select * from {{ ref('stg_cur__deliveries') }}

),

untagged as (

    select
        'RECON-' || to_char(billing_period, 'YYYY-MM') as recon_id,
        billing_period as period_start,
        'Tagging' as category,
        'untagged:' || line_item_product_code
        || case when billing_currency = 'USD' then '' else ':' || billing_currency end as key,
        format(
            '%s: %s line(s) without the tenant tag, %s %s billed',
            line_item_product_code, count(*), {{ round_money('sum(billed_cost)', 2) }}, billing_currency
        ) as detail,
        {{ round_money('sum(billed_cost)', 2) }} as amount
    from cost_lines
    where resource_tags_user_tenant_id is null
    group by billing_period, line_item_product_code, billing_currency
    having sum(billed_cost) <> 0

),

unknown_tenants as (

    select
        'RECON-' || to_char(cost_lines.billing_period, 'YYYY-MM') as recon_id,
        cost_lines.billing_period as period_start,
        'Tagging' as category,
        'unknown_tenant:' || cost_lines.resource_tags_user_tenant_id
        || case when cost_lines.billing_currency = 'USD' then '' else ':' || cost_lines.billing_currency end as key,
        format(
            'tag %s names no tenant in the catalog: %s line(s), %s %s billed (quarantined)',
            cost_lines.resource_tags_user_tenant_id, count(*), {{ round_money('sum(cost_lines.billed_cost)', 2) }},
            cost_lines.billing_currency
        ) as detail,
        {{ round_money('sum(cost_lines.billed_cost)', 2) }} as amount
    from cost_lines
    left join tenants
        on cost_lines.resource_tags_user_tenant_id = tenants.tenant_id
    where cost_lines.resource_tags_user_tenant_id is not null and tenants.tenant_id is null
    group by cost_lines.billing_period, cost_lines.resource_tags_user_tenant_id, cost_lines.billing_currency

),

removed_tags as (

    select
        'RECON-' || to_char(deliveries.billing_period, 'YYYY-MM') as recon_id,
        deliveries.billing_period as period_start,
        'Tagging' as category,
        'tag_removed:' || removed.tag_key as key,
        format(
            'tag %s of delivery %s is missing from live delivery %s (%s, compared with %s): lines that carried it'
            || ' are untagged now',
            removed.tag_key, deliveries.drift_against, deliveries.delivery_id, deliveries.report_name,
            deliveries.drift_basis
        ) as detail,
        cast(null as numeric) as amount
    from deliveries
    cross join lateral unnest(deliveries.tag_keys_removed) as removed (tag_key)
    where deliveries.is_live

)

select * from untagged
union all
select * from unknown_tenants
union all
select * from removed_tags
