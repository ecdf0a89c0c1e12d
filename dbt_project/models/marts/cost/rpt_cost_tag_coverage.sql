{#- Tag coverage per billing period: the share of billed cost on lines carrying the tenant tag
    (TENANT_TAG_KEY). Tax, credits and account-level fees are never tagged, so 100 % is not the
    goal; the trend is. Also the same share over usage lines only, where tagging is possible. -#}
with

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

deliveries as (

    select * from {{ ref('stg_cur__deliveries') }}

),

by_period as (

    select
        billing_period,
        sum(billed_cost) as total_cost,
        sum(case when resource_tags_user_tenant_id is not null then billed_cost else 0 end) as tagged_cost,
        sum(case when line_item_line_item_type like '%Usage' then billed_cost else 0 end) as usage_cost,
        sum(
            case
                when line_item_line_item_type like '%Usage' and resource_tags_user_tenant_id is not null
                    then billed_cost
                else 0
            end
        ) as tagged_usage_cost,
        count(*) as line_count,
        count(resource_tags_user_tenant_id) as tagged_line_count
    from cost_lines
    group by billing_period

)

select
    by_period.billing_period,
    by_period.total_cost,
    by_period.tagged_cost,
    by_period.total_cost - by_period.tagged_cost as untagged_cost,
    case when by_period.total_cost = 0 then null else round(by_period.tagged_cost / by_period.total_cost * 100, 2) end
        as tag_coverage_pct,
    case when by_period.usage_cost = 0 then null else round(by_period.tagged_usage_cost / by_period.usage_cost * 100, 2) end
        as usage_tag_coverage_pct,
    by_period.line_count,
    by_period.tagged_line_count,
    deliveries.delivery_id,
    deliveries.is_final
from by_period
left join deliveries
    on by_period.billing_period = deliveries.billing_period
    and deliveries.is_live
