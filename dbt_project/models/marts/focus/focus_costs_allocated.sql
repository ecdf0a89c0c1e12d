{#- Allocated cost per tenant in FOCUS 1.2 vocabulary (showback): one row per billing period,
    usage day, service and tenant of fact_cost_allocated, with the tenant as the sub account
    (SubAccountId = tenant_id, SubAccountType 'Tenant'); the quarantine pool has no sub account
    and x_IsQuarantined. Its rows are allocations of billed cost, not provider charges: every
    cost column is the allocated cost, and the line types a day mixes (usage, tax, credits) are
    one 'Usage' row. Per period and service, BilledCost sums to focus_costs' BilledCost rounded
    to the cent (the allocation's conservation rule). A view: fact_cost_allocated is small. -#}
{{ config(materialized='view') }}

with

allocated as (

    select * from {{ ref('fact_cost_allocated') }}

),

tenants as (

    select * from {{ ref('stg_catalog__tenants') }}

),

services as (

    select * from {{ ref('aws_services') }}

),

-- The payer account and currency of each period's CUR lines (one payer per period in a CUR).
periods as (

    select
        billing_period,
        min(bill_payer_account_id) as billing_account_id,
        min(coalesce(nullif(line_item_currency_code, ''), 'USD')) as billing_currency
    from {{ ref('fact_cost_raw') }}
    group by billing_period

),

final as (

    select
        periods.billing_account_id as "BillingAccountId",
        cast(null as text) as "BillingAccountName",
        periods.billing_currency as "BillingCurrency",
        cast(allocated.billing_period as timestamp) at time zone 'UTC' as "BillingPeriodStart",
        cast(allocated.billing_period + interval '1 month' as timestamp) at time zone 'UTC' as "BillingPeriodEnd",
        'Amazon Web Services, Inc.' as "InvoiceIssuerName",
        'AWS' as "ProviderName",
        'AWS' as "PublisherName",
        'Usage' as "ChargeCategory",
        cast(null as text) as "ChargeClass",
        concat(
            'Allocated cost of ', allocated.service, ' (', allocated.allocation_method,
            case when allocated.quarantine_reason is not null then concat(': ', allocated.quarantine_reason) else '' end,
            ')'
        ) as "ChargeDescription",
        'Usage-Based' as "ChargeFrequency",
        cast(allocated.usage_date as timestamp) at time zone 'UTC' as "ChargePeriodStart",
        cast(allocated.usage_date + 1 as timestamp) at time zone 'UTC' as "ChargePeriodEnd",
        allocated.allocated_cost as "BilledCost",
        allocated.allocated_cost as "EffectiveCost",
        allocated.allocated_cost as "ListCost",
        allocated.allocated_cost as "ContractedCost",
        coalesce(services.service_name, allocated.service) as "ServiceName",
        coalesce(services.service_category, 'Other') as "ServiceCategory",
        coalesce(services.service_subcategory, 'Other (Other)') as "ServiceSubcategory",
        allocated.tenant_id as "SubAccountId",
        case when allocated.tenant_id is not null then coalesce(tenants.name, allocated.tenant_id) end as "SubAccountName",
        case when allocated.tenant_id is not null then 'Tenant' end as "SubAccountType",

        allocated.billing_period as "x_BillingPeriod",
        allocated.usage_date as "x_UsageDate",
        allocated.service as "x_ProductCode",
        allocated.tenant_id as "x_TenantId",
        allocated.allocation_method as "x_AllocationMethod",
        allocated.rule_version as "x_AllocationRuleVersion",
        allocated.exact_cost as "x_ExactAllocatedCost",
        allocated.is_quarantined as "x_IsQuarantined",
        allocated.quarantine_reason as "x_QuarantineReason"

    from allocated
    inner join periods on allocated.billing_period = periods.billing_period
    left join tenants on allocated.tenant_id = tenants.tenant_id
    left join services on lower(allocated.service) = lower(services.product_code)

)

select * from final
