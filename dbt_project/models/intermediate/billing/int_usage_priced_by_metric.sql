-- Usage of each segment (int_subscriptions_split_by_month) per metric, priced with the plan's
-- component as it was at the period's close.
--
-- Rules (DESIGN.md, Money and time):
-- * monthly quantity: sum of hourly quantities for count/sum metrics, their max for max metrics;
--   an hour belongs to the subscription row whose [started_at, ended_at) contains it;
-- * quota (per subscription, event type and month): units above limit_value are not priced by
--   the component; with allow_with_overage they are billed at overage_unit_price, with block they
--   are not billed (blocked_units). For count/sum metrics the limit is consumed by segments in
--   time order; a max metric compares each segment's peak with the limit;
-- * included units are free, per segment, before the model applies;
-- * per_unit: units x unit_price; package: whole packages (rounded up) x unit_price;
--   graduated: each unit in its tier, plus the flat fee of every tier reached;
--   volume: all units at the tier the total reaches (up_to inclusive), plus its flat fee;
--   zero billable units cost nothing;
-- * a missing price is an error (pricing_error), never a zero.

{%- set volume_tier -%}
    model = 'volume' and (billable_quantity > lower_bound or tier = 1) and (up_to is null or billable_quantity <= up_to)
{%- endset %}

with

segments as (

    select * from {{ ref('int_subscriptions_split_by_month') }}

),

usage as (

    select * from {{ ref('usage_metered_hourly') }}

),

metrics as (

    select * from {{ ref('stg_catalog__metrics') }}

),

components as (

    {{ catalog_versions(ref('snap_catalog__price_components'), ['plan_id', 'metric_code']) }}

),

tiers as (

    {{ catalog_versions(ref('snap_catalog__price_tiers'), ['plan_id', 'metric_code', 'tier']) }}

),

quotas as (

    {{ catalog_versions(ref('snap_catalog__quotas'), ['subscription_id', 'event_type']) }}

),

usage_by_segment as (

    select
        segments.invoice_id,
        segments.subscription_id,
        segments.segment_started_at,
        usage.metric_code,
        case
            when max(metrics.aggregation) = 'max' then max(usage.quantity)
            else sum(usage.quantity)
        end as usage_quantity
    from segments
    inner join usage
        on usage.subscription_id = segments.subscription_id
        and usage.hour >= segments.active_from
        and usage.hour < segments.active_to
    left join metrics
        on metrics.metric_code = usage.metric_code
    group by 1, 2, 3, 4

),

-- Every metric the plan prices (zero usage included) and every metric with usage (priced or not).
segment_metrics as (

    select
        segments.invoice_id,
        segments.subscription_id,
        segments.segment_started_at,
        segments.plan_id,
        segments.period_start,
        segments.priced_at,
        components.metric_code
    from segments
    inner join components
        on components.plan_id = segments.plan_id
        and {{ catalog_version_valid('components', 'segments.priced_at') }}

    union

    select
        segments.invoice_id,
        segments.subscription_id,
        segments.segment_started_at,
        segments.plan_id,
        segments.period_start,
        segments.priced_at,
        usage_by_segment.metric_code
    from usage_by_segment
    inner join segments
        on segments.invoice_id = usage_by_segment.invoice_id
        and segments.segment_started_at = usage_by_segment.segment_started_at

),

with_quota as (

    select
        segment_metrics.*,
        coalesce(usage_by_segment.usage_quantity, 0) as usage_quantity,
        metrics.aggregation,
        metrics.unit,
        quotas.limit_value as quota_limit,
        quotas.action as quota_action,
        quotas.overage_unit_price,
        coalesce(sum(usage_by_segment.usage_quantity) over (
            partition by segment_metrics.invoice_id, segment_metrics.metric_code
            order by segment_metrics.segment_started_at
            rows between unbounded preceding and 1 preceding
        ), 0) as usage_before_segment
    from segment_metrics
    left join usage_by_segment
        on usage_by_segment.invoice_id = segment_metrics.invoice_id
        and usage_by_segment.segment_started_at = segment_metrics.segment_started_at
        and usage_by_segment.metric_code = segment_metrics.metric_code
    left join metrics
        on metrics.metric_code = segment_metrics.metric_code
    left join quotas
        on quotas.subscription_id = segment_metrics.subscription_id
        and quotas.event_type = metrics.event_type
        and {{ catalog_version_valid('quotas', 'segment_metrics.priced_at') }}

),

within_quota as (

    select
        *,
        case
            when quota_limit is null then usage_quantity
            when aggregation = 'max' then least(usage_quantity, quota_limit)
            else greatest(0, least(usage_quantity, quota_limit - usage_before_segment))
        end as quota_quantity
    from with_quota

),

billable as (

    select
        within_quota.*,
        usage_quantity - quota_quantity as over_quota_quantity,
        components.model,
        components.included_units,
        components.unit_price as component_unit_price,
        components.package_size,
        components.plan_id is not null as has_component,
        greatest(0, quota_quantity - coalesce(components.included_units, 0)) as billable_quantity
    from within_quota
    left join components
        on components.plan_id = within_quota.plan_id
        and components.metric_code = within_quota.metric_code
        and {{ catalog_version_valid('components', 'within_quota.priced_at') }}

),

tiered as (

    select
        billable.invoice_id,
        billable.segment_started_at,
        billable.metric_code,
        tiers.tier,
        tiers.unit_price,
        tiers.flat_fee,
        coalesce(lag(tiers.up_to) over tier_order, 0) as lower_bound,
        tiers.up_to,
        billable.billable_quantity,
        billable.model
    from billable
    inner join tiers
        on tiers.plan_id = billable.plan_id
        and tiers.metric_code = billable.metric_code
        and {{ catalog_version_valid('tiers', 'billable.priced_at') }}
    where billable.model in ('graduated', 'volume')
    window tier_order as (partition by billable.invoice_id, billable.segment_started_at, billable.metric_code order by tiers.tier)

),

tier_amounts as (

    select
        invoice_id,
        segment_started_at,
        metric_code,
        count(*) as tier_count,
        -- graduated: each unit in its own tier, and the flat fee of each tier reached
        sum(
            case when model = 'graduated' then
                greatest(0, least(billable_quantity, coalesce(up_to, billable_quantity)) - lower_bound) * unit_price
                + case when billable_quantity > lower_bound then flat_fee else 0 end
            end
        ) as graduated_amount,
        string_agg(
            case when model = 'graduated' and billable_quantity > lower_bound then
                'tier ' || tier || ': '
                || {{ quantity_text('least(billable_quantity, coalesce(up_to, billable_quantity)) - lower_bound') }}
                || ' x ' || unit_price::text
                || case when flat_fee > 0 then ' + ' || flat_fee::text else '' end
            end,
            '; ' order by tier
        ) as graduated_detail,
        -- volume: the tier whose (lower_bound, up_to] holds the total; a total of 0 is tier 1
        -- (the highest such tier), its unit price and flat fee read in the same pass rather than
        -- by joining tiered again: that self-join went quadratic when the planner, misjudging
        -- tiered's size, chose a nested loop (10,000 subscriptions: minutes)
        max(case when {{ volume_tier }} then tier end) as volume_tier,
        (array_agg(unit_price order by tier desc) filter (where {{ volume_tier }}))[1] as volume_unit_price,
        (array_agg(flat_fee order by tier desc) filter (where {{ volume_tier }}))[1] as volume_flat_fee,
        -- units above the last bounded tier have no price
        bool_or(up_to is null) as has_open_tier,
        max(up_to) as last_bound
    from tiered
    group by 1, 2, 3

),

priced as (

    select
        billable.invoice_id,
        billable.subscription_id,
        billable.segment_started_at,
        billable.plan_id,
        billable.period_start,
        billable.metric_code,
        billable.unit,
        billable.model,
        billable.usage_quantity,
        billable.quota_limit,
        billable.quota_action,
        billable.included_units,
        billable.billable_quantity,
        case when billable.quota_action = 'allow_with_overage' then billable.over_quota_quantity else 0 end
            as overage_quantity,
        case when billable.quota_action = 'block' then billable.over_quota_quantity else 0 end
            as blocked_units,
        billable.overage_unit_price,
        billable.package_size,
        case
            when billable.model = 'package' then ceil(billable.billable_quantity / billable.package_size)
        end as packages,
        case
            when billable.model in ('per_unit', 'package') then billable.component_unit_price
            when billable.model = 'volume' then tier_amounts.volume_unit_price
        end as unit_price,
        case
            when billable.billable_quantity = 0 then 0
            when billable.model = 'per_unit' then billable.billable_quantity * billable.component_unit_price
            when billable.model = 'package'
                then ceil(billable.billable_quantity / billable.package_size) * billable.component_unit_price
            when billable.model = 'graduated' then tier_amounts.graduated_amount
            when billable.model = 'volume'
                then billable.billable_quantity * tier_amounts.volume_unit_price + tier_amounts.volume_flat_fee
        end as amount_unrounded,
        tier_amounts.graduated_detail,
        tier_amounts.volume_flat_fee,
        case
            when not billable.has_component and billable.usage_quantity > 0
                then 'no price for metric ' || billable.metric_code || ' on plan ' || billable.plan_id
            when billable.billable_quantity = 0 then null
            when billable.model in ('per_unit', 'package') and billable.component_unit_price is null
                then 'no unit_price for metric ' || billable.metric_code || ' on plan ' || billable.plan_id
            when billable.model = 'package' and billable.package_size is null
                then 'no package_size for metric ' || billable.metric_code || ' on plan ' || billable.plan_id
            when billable.model in ('graduated', 'volume') and tier_amounts.tier_count is null
                then 'no price tiers for metric ' || billable.metric_code || ' on plan ' || billable.plan_id
            when billable.model in ('graduated', 'volume') and not tier_amounts.has_open_tier
                and billable.billable_quantity > tier_amounts.last_bound
                then 'usage of ' || billable.metric_code || ' above the last price tier of plan ' || billable.plan_id
        end as pricing_error,
        case
            when billable.quota_action = 'allow_with_overage' and billable.over_quota_quantity > 0
                and billable.overage_unit_price is null
                then 'no overage_unit_price for the quota on ' || billable.metric_code
        end as overage_error
    from billable
    left join tier_amounts
        on tier_amounts.invoice_id = billable.invoice_id
        and tier_amounts.segment_started_at = billable.segment_started_at
        and tier_amounts.metric_code = billable.metric_code

)

select * from priced
