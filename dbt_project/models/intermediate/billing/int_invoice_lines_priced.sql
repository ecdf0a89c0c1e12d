-- Every priced line of every draft invoice except credits: prorated base fees, usage per metric,
-- overage above quota, and the minimum-commitment true-up. Amounts are rounded half-up to the
-- invoice currency's minor unit line by line (DESIGN.md, Money and time).
--
-- * base fee: monthly_base_fee x active days / days in month, per segment (plan);
-- * minimum commitment: the segments' commitments prorated the same way and summed; when the
--   invoice's usage and overage lines (rounded) fall short of it, a true-up line adds the gap.

with

segments as (

    select * from {{ ref('int_subscriptions_split_by_month') }}

),

usage_priced as (

    select * from {{ ref('int_usage_priced_by_metric') }}

),

plans as (

    {{ catalog_versions(ref('snap_catalog__plans'), ['plan_id']) }}

),

tenants as (

    {{ catalog_versions(ref('snap_catalog__tenants'), ['tenant_id']) }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

invoice_currency as (

    select distinct on (segments.invoice_id)
        segments.invoice_id,
        tenants.currency,
        currencies.minor_units
    from segments
    left join tenants
        on tenants.tenant_id = segments.tenant_id
        and {{ catalog_version_valid('tenants', 'segments.priced_at') }}
    left join currencies
        on currencies.currency = tenants.currency
    order by segments.invoice_id

),

segment_plans as (

    select
        segments.*,
        plans.name as plan_name,
        plans.currency as plan_currency,
        plans.monthly_base_fee,
        plans.minimum_commitment,
        invoice_currency.minor_units
    from segments
    left join plans
        on plans.plan_id = segments.plan_id
        and {{ catalog_version_valid('plans', 'segments.priced_at') }}
    left join invoice_currency
        on invoice_currency.invoice_id = segments.invoice_id

),

base_fee_lines as (

    select
        invoice_id,
        1 as kind_order,
        segment_started_at,
        'base_fee' as kind,
        cast(null as text) as metric_code,
        plan_name || ' base fee, ' || active_days || ' of ' || days_in_month || ' days' as description,
        cast(active_days as numeric) as quantity,
        monthly_base_fee / days_in_month as unit_price,
        {{ round_money('monthly_base_fee * active_days / days_in_month', 'minor_units') }} as amount
    from segment_plans
    where monthly_base_fee > 0 and active_days > 0 and minor_units is not null

),

usage_lines as (

    select
        usage_priced.invoice_id,
        2 as kind_order,
        usage_priced.segment_started_at,
        'usage' as kind,
        usage_priced.metric_code,
        usage_priced.metric_code || ' (' || usage_priced.model || ', plan ' || usage_priced.plan_id || '): '
        || {{ quantity_text('usage_priced.usage_quantity') }} || ' ' || coalesce(usage_priced.unit, 'units')
        || case when usage_priced.included_units > 0
            then ', ' || {{ quantity_text('usage_priced.included_units') }} || ' included' else '' end
        || case when usage_priced.model = 'package'
            then ', ' || {{ quantity_text('usage_priced.packages') }} || ' package(s) of '
                || {{ quantity_text('usage_priced.package_size') }}
            else '' end
        || case when usage_priced.model = 'graduated' and usage_priced.graduated_detail is not null
            then ', ' || usage_priced.graduated_detail else '' end
        || case when usage_priced.model = 'volume' and usage_priced.volume_flat_fee > 0
            and usage_priced.billable_quantity > 0
            then ', flat fee ' || usage_priced.volume_flat_fee::text else '' end
        as description,
        usage_priced.billable_quantity as quantity,
        usage_priced.unit_price,
        {{ round_money('usage_priced.amount_unrounded', 'invoice_currency.minor_units') }} as amount
    from usage_priced
    inner join invoice_currency
        on invoice_currency.invoice_id = usage_priced.invoice_id
    where usage_priced.usage_quantity > 0
        and usage_priced.pricing_error is null
        and invoice_currency.minor_units is not null

),

overage_lines as (

    select
        usage_priced.invoice_id,
        3 as kind_order,
        usage_priced.segment_started_at,
        'overage' as kind,
        usage_priced.metric_code,
        usage_priced.metric_code || ' above the quota of ' || {{ quantity_text('usage_priced.quota_limit') }}
        || ' per month' as description,
        usage_priced.overage_quantity as quantity,
        usage_priced.overage_unit_price as unit_price,
        {{ round_money('usage_priced.overage_quantity * usage_priced.overage_unit_price',
                       'invoice_currency.minor_units') }} as amount
    from usage_priced
    inner join invoice_currency
        on invoice_currency.invoice_id = usage_priced.invoice_id
    where usage_priced.overage_quantity > 0
        and usage_priced.overage_error is null
        and invoice_currency.minor_units is not null

),

commitments as (

    select
        invoice_id,
        max(minor_units) as minor_units,
        sum(minimum_commitment * active_days / days_in_month) as commitment
    from segment_plans
    where minimum_commitment > 0
    group by 1

),

usage_charges as (

    select invoice_id, sum(amount) as charged
    from (
        select invoice_id, amount from usage_lines
        union all
        select invoice_id, amount from overage_lines
    ) as charges
    group by 1

),

minimum_commit_lines as (

    select
        commitments.invoice_id,
        4 as kind_order,
        cast(null as timestamptz) as segment_started_at,
        'minimum_commit' as kind,
        cast(null as text) as metric_code,
        'minimum commitment true-up: commitment '
        || {{ round_money('commitments.commitment', 'commitments.minor_units') }}::text
        || ', usage charged ' || coalesce(usage_charges.charged, 0)::text as description,
        cast(1 as numeric) as quantity,
        {{ round_money('commitments.commitment - coalesce(usage_charges.charged, 0)', 'commitments.minor_units') }}
            as unit_price,
        {{ round_money('commitments.commitment - coalesce(usage_charges.charged, 0)', 'commitments.minor_units') }}
            as amount
    from commitments
    left join usage_charges
        on usage_charges.invoice_id = commitments.invoice_id
    where commitments.minor_units is not null
        and {{ round_money('commitments.commitment - coalesce(usage_charges.charged, 0)', 'commitments.minor_units') }}
        > 0

),

lines as (

    select * from base_fee_lines
    union all
    select * from usage_lines
    union all
    select * from overage_lines
    union all
    select * from minimum_commit_lines

)

select * from lines
