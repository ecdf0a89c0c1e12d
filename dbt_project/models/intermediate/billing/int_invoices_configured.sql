-- One row per draft invoice (subscription and month) with what pricing needs beyond its lines:
-- currency and minor unit, the tax rate, and every pricing configuration error that blocks it;
-- and what its document prints beyond the figures: the service period actually billed (from the
-- first active day to the end of the last, exclusive: a subscription started on the 16th bills
-- from the 16th) and the buyer's address and VAT id, from the catalog as it was at the close.
--
-- Tax point: the last day of the period. The rate is the tenant's country's rate valid on that
-- day (valid_from <= day < valid_to), so a rate change inside the month applies to the month's
-- whole invoice from the period in which it is in force at the close.
-- A missing price, plan, tax rate or currency, or a plan priced in another currency than the
-- tenant's, is a configuration error: the invoice is blocked with the reason, never priced at zero.

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

tax_rates as (

    {{ catalog_versions(ref('snap_catalog__tax_rates'), ['country', 'valid_from']) }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

invoices as (

    select
        invoice_id,
        subscription_id,
        min(tenant_id) as tenant_id,
        min(period_start) as period_start,
        min(period_end) as period_end,
        min(priced_at) as priced_at,
        -- the days active_days counts (int_subscriptions_split_by_month): end exclusive
        (min(active_from) at time zone 'UTC')::date as service_start,
        (max(active_to) at time zone 'UTC')::date as service_end,
        sum(active_days) as active_days,
        count(*) as segment_count
    from segments
    group by 1, 2

),

with_tenant as (

    select
        invoices.*,
        tenants.tenant_id is not null as tenant_found,
        tenants.country,
        tenants.currency,
        tenants.address as buyer_address,
        tenants.vat_id as buyer_vat_id,
        currencies.minor_units,
        (invoices.period_end - 1) as tax_date
    from invoices
    left join tenants
        on tenants.tenant_id = invoices.tenant_id
        and {{ catalog_version_valid('tenants', 'invoices.priced_at') }}
    left join currencies
        on currencies.currency = tenants.currency

),

with_tax as (

    select
        with_tenant.*,
        tax_rates.rate as tax_rate
    from with_tenant
    left join tax_rates
        on tax_rates.country = with_tenant.country
        and tax_rates.valid_from <= with_tenant.tax_date
        and (tax_rates.valid_to is null or with_tenant.tax_date < tax_rates.valid_to)
        and {{ catalog_version_valid('tax_rates', 'with_tenant.priced_at') }}

),

errors as (

    select invoice_id, 1 as error_order, 'unknown tenant ' || tenant_id as reason
    from with_tax where not tenant_found

    union all

    select invoice_id, 2, 'unknown currency ' || currency || ' of tenant ' || tenant_id
    from with_tax where tenant_found and minor_units is null

    union all

    select invoice_id, 3, 'no tax rate for country ' || country || ' on ' || tax_date::text
    from with_tax where tenant_found and tax_rate is null

    union all

    select segments.invoice_id, 4, 'unknown plan ' || segments.plan_id
    from segments
    left join plans
        on plans.plan_id = segments.plan_id
        and {{ catalog_version_valid('plans', 'segments.priced_at') }}
    where plans.plan_id is null

    union all

    select segments.invoice_id, 5,
        'plan ' || plans.plan_id || ' is priced in ' || plans.currency
        || ', tenant ' || with_tax.tenant_id || ' is invoiced in ' || with_tax.currency
    from segments
    inner join plans
        on plans.plan_id = segments.plan_id
        and {{ catalog_version_valid('plans', 'segments.priced_at') }}
    inner join with_tax
        on with_tax.invoice_id = segments.invoice_id
    where plans.currency is distinct from with_tax.currency and with_tax.tenant_found

    union all

    select invoice_id, 6, pricing_error from usage_priced where pricing_error is not null

    union all

    select invoice_id, 7, overage_error from usage_priced where overage_error is not null

),

error_lists as (

    select
        invoice_id,
        string_agg(distinct reason, '; ') as pricing_errors
    from errors
    group by 1

),

final as (

    select
        with_tax.invoice_id,
        with_tax.subscription_id,
        with_tax.tenant_id,
        with_tax.period_start,
        with_tax.period_end,
        with_tax.service_start,
        with_tax.service_end,
        with_tax.priced_at,
        with_tax.active_days,
        with_tax.segment_count,
        with_tax.country,
        with_tax.buyer_address,
        with_tax.buyer_vat_id,
        with_tax.currency,
        with_tax.minor_units,
        with_tax.tax_date,
        with_tax.tax_rate,
        error_lists.pricing_errors,
        error_lists.pricing_errors is not null as has_pricing_error
    from with_tax
    left join error_lists
        on error_lists.invoice_id = with_tax.invoice_id

)

select * from final
