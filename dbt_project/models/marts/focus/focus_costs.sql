{#- Our AWS cost data as a FinOps FOCUS 1.2 Cost and Usage dataset: one row per CUR line of the
    live delivery of each billing period (fact_cost_raw), so BilledCost sums to fact_cost_raw's
    billed_cost and EffectiveCost to its amortized_cost. Mapping and choices: docs/focus.md.
    A view (not the folder's table): the export reads one billing period through
    fact_cost_raw's (billing_period, line_seq) index, and a second copy of every CUR line
    would only go stale. -#}
{{ config(materialized='view') }}

with

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

line_items as (

    select * from {{ ref('stg_cur__line_items') }}

),

services as (

    select * from {{ ref('int_aws_services_mapped_to_focus') }}

),

regions (region_id, region_name) as (

    values
        ('us-east-1', 'US East (N. Virginia)'),
        ('us-east-2', 'US East (Ohio)'),
        ('us-west-1', 'US West (N. California)'),
        ('us-west-2', 'US West (Oregon)'),
        ('eu-west-1', 'Europe (Ireland)'),
        ('eu-west-2', 'Europe (London)'),
        ('eu-central-1', 'Europe (Frankfurt)'),
        ('ap-southeast-1', 'Asia Pacific (Singapore)'),
        ('ap-southeast-2', 'Asia Pacific (Sydney)'),
        ('ap-northeast-1', 'Asia Pacific (Tokyo)'),
        ('global', 'Global')

),

joined as (

    select
        cost_lines.*,
        line_items.bill_invoicing_entity,
        line_items.bill_billing_entity,
        line_items.bill_billing_period_start_date,
        line_items.bill_billing_period_end_date,
        line_items.line_item_availability_zone,
        line_items.line_item_line_item_description,
        line_items.line_item_unblended_rate,
        line_items.line_item_net_unblended_rate,
        line_items.pricing_public_on_demand_cost,
        line_items.pricing_public_on_demand_rate,
        line_items.pricing_unit,
        line_items.pricing_term,
        line_items.product_sku,
        line_items.product_product_name,
        line_items.reservation_reservation_a_r_n,
        line_items.savings_plan_savings_plan_a_r_n,
        line_items.savings_plan_savings_plan_effective_cost,
        line_items.savings_plan_net_savings_plan_effective_cost,
        line_items.reservation_net_effective_cost,
        line_items.savings_plan_total_commitment_to_date,
        -- FOCUS ChargeCategory / ChargeClass / ChargeFrequency from the line item type.
        case cost_lines.line_item_line_item_type
            when 'Usage' then 'Usage'
            when 'DiscountedUsage' then 'Usage'
            when 'SavingsPlanCoveredUsage' then 'Usage'
            when 'SavingsPlanNegation' then 'Usage'
            when 'Fee' then 'Purchase'
            when 'RIFee' then 'Purchase'
            when 'SavingsPlanRecurringFee' then 'Purchase'
            when 'SavingsPlanUpfrontFee' then 'Purchase'
            when 'Tax' then 'Tax'
            when 'Credit' then 'Credit'
            when 'BundledDiscount' then 'Credit'
            when 'Discount' then 'Credit'
            when 'EdpDiscount' then 'Credit'
            when 'PrivateRateDiscount' then 'Credit'
            else 'Adjustment'  -- Refund and anything AWS adds later
        end as charge_category,
        case
            when cost_lines.line_item_line_item_type = 'Refund' or cost_lines.bill_bill_type = 'Refund'
                then 'Correction'
        end as charge_class,
        case
            when cost_lines.line_item_line_item_type in ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation')
                then 'Usage-Based'
            when cost_lines.line_item_line_item_type in ('RIFee', 'SavingsPlanRecurringFee')
                then 'Recurring'
            else 'One-Time'
        end as charge_frequency,
        -- The commitment (RI or Savings Plan) a line belongs to, when the CUR names it.
        case
            when cost_lines.line_item_line_item_type in ('DiscountedUsage', 'RIFee')
                then nullif(line_items.reservation_reservation_a_r_n, '')
            when cost_lines.line_item_line_item_type in (
                'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee'
            )
                then nullif(line_items.savings_plan_savings_plan_a_r_n, '')
        end as commitment_discount_id,
        -- The unit the quantity is priced in: the CUR's pricing unit, else one read off the
        -- usage type (generated and some legacy CURs leave pricing/unit empty).
        coalesce(
            nullif(line_items.pricing_unit, ''),
            case
                when cost_lines.line_item_usage_type ilike '%ByteHrs%' then 'GB-Hours'
                when cost_lines.line_item_usage_type ~* '(BoxUsage|InstanceUsage|hosting|-Hrs|Hours)' then 'Hours'
                when cost_lines.line_item_usage_type ilike '%Request%' then 'Requests'
                when cost_lines.line_item_usage_type ilike '%Bytes%' then 'GB'
                when cost_lines.line_item_usage_type ilike '%Metric%' then 'Metrics'
                else 'Units'
            end
        ) as usage_unit
    from cost_lines
    inner join line_items
        on cost_lines.delivery_id = line_items.delivery_id
        and cost_lines.line_seq = line_items.line_seq

),

priced as (

    select
        joined.*,
        -- FOCUS EffectiveCost: amortised and net of negotiated discounts (AWS's net columns where
        -- it gives them, as BilledCost is). A purchase that covers eligible charges (AWS Fee = upfront
        -- RI/SP fees, RIFee, SavingsPlanRecurringFee) is 0: its cost is amortised into the usage
        -- it covers. x_AmortizedCost keeps fact_cost_raw's amortized_cost of every line.
        case
            when joined.charge_category = 'Purchase' then 0
            when joined.line_item_line_item_type = 'DiscountedUsage'
                then coalesce(joined.reservation_net_effective_cost, joined.amortized_cost)
            when joined.line_item_line_item_type = 'SavingsPlanCoveredUsage'
                then coalesce(joined.savings_plan_net_savings_plan_effective_cost, joined.amortized_cost)
            when joined.line_item_line_item_type = 'SavingsPlanNegation' then 0
            else joined.billed_cost
        end as effective_cost,
        -- Quantities and unit prices only for what is priced per unit (Usage, Purchase);
        -- a negation line is negative usage, so its quantity is negative and its prices not.
        case
            when joined.charge_category in ('Usage', 'Purchase') and joined.charge_class is null
                then coalesce(joined.line_item_usage_amount, 0)
                    * case when joined.line_item_line_item_type = 'SavingsPlanNegation' then -1 else 1 end
        end as pricing_quantity,
        case
            when joined.charge_category in ('Usage', 'Purchase') and joined.charge_class is null
                then abs(coalesce(joined.pricing_public_on_demand_rate, joined.line_item_unblended_rate, 0))
        end as list_unit_price,
        case
            when joined.charge_category in ('Usage', 'Purchase') and joined.charge_class is null
                then abs(coalesce(
                    joined.line_item_net_unblended_rate,
                    joined.line_item_unblended_rate,
                    joined.pricing_public_on_demand_rate,
                    0
                ))
        end as contracted_unit_price
    from joined

),

final as (

    select
        ---------- billing account and period
        nullif(priced.bill_payer_account_id, '') as "BillingAccountId",
        cast(nullif(priced.extras ->> 'bill_payer_account_name', '') as text) as "BillingAccountName",
        coalesce(nullif(priced.line_item_currency_code, ''), 'USD') as "BillingCurrency",
        cast(priced.billing_period as timestamp) at time zone 'UTC' as "BillingPeriodStart",
        cast(priced.billing_period + interval '1 month' as timestamp) at time zone 'UTC' as "BillingPeriodEnd",
        nullif(priced.bill_invoice_id, '') as "InvoiceId",
        -- AWS invoices every CUR line (Marketplace ones too), under the provider's name; the legal
        -- entity is x_InvoicingEntity. (focus-validator reads a different ProviderName and
        -- InvoiceIssuerName as a third party collecting the payment: BilledCost would have to be 0.)
        'AWS' as "InvoiceIssuerName",
        'AWS' as "ProviderName",
        case
            when priced.bill_billing_entity = 'AWS Marketplace' then coalesce(nullif(priced.extras ->> 'product_publisher', ''), 'AWS Marketplace')
            else 'AWS'
        end as "PublisherName",

        ---------- the charge
        priced.charge_category as "ChargeCategory",
        priced.charge_class as "ChargeClass",
        coalesce(
            nullif(priced.line_item_line_item_description, ''),
            concat(priced.line_item_line_item_type, ' ', priced.line_item_product_code)
        ) as "ChargeDescription",
        priced.charge_frequency as "ChargeFrequency",
        coalesce(priced.line_item_usage_start_date, cast(priced.billing_period as timestamp) at time zone 'UTC') as "ChargePeriodStart",
        coalesce(
            priced.line_item_usage_end_date, cast(priced.billing_period + interval '1 month' as timestamp) at time zone 'UTC'
        ) as "ChargePeriodEnd",

        ---------- costs (numeric, the billing currency)
        priced.billed_cost as "BilledCost",
        priced.effective_cost as "EffectiveCost",
        case
            when priced.list_unit_price is not null then priced.list_unit_price * priced.pricing_quantity
            else coalesce(priced.pricing_public_on_demand_cost, priced.billed_cost)
        end as "ListCost",
        priced.list_unit_price as "ListUnitPrice",
        case
            when priced.contracted_unit_price is not null then priced.contracted_unit_price * priced.pricing_quantity
            else priced.billed_cost
        end as "ContractedCost",
        priced.contracted_unit_price as "ContractedUnitPrice",
        -- Prices are published and billed in one currency: the pricing-currency columns repeat them.
        coalesce(nullif(priced.line_item_currency_code, ''), 'USD') as "PricingCurrency",
        priced.effective_cost as "PricingCurrencyEffectiveCost",
        priced.list_unit_price as "PricingCurrencyListUnitPrice",
        priced.contracted_unit_price as "PricingCurrencyContractedUnitPrice",

        ---------- pricing and consumption
        case
            when priced.charge_category not in ('Usage', 'Purchase') or priced.charge_class is not null then null
            when priced.line_item_line_item_type in ('DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation') then 'Committed'
            when priced.line_item_usage_type ilike '%SpotUsage%' then 'Dynamic'
            when priced.charge_category = 'Purchase' and priced.commitment_discount_id is null and priced.line_item_line_item_type = 'Fee' then 'Other'
            else 'Standard'
        end as "PricingCategory",
        priced.pricing_quantity as "PricingQuantity",
        case when priced.pricing_quantity is not null then priced.usage_unit end as "PricingUnit",
        case
            when priced.charge_category = 'Usage' and priced.charge_class is null then priced.pricing_quantity
        end as "ConsumedQuantity",
        case
            when priced.charge_category = 'Usage' and priced.charge_class is null then priced.usage_unit
        end as "ConsumedUnit",
        case
            when priced.charge_category in ('Usage', 'Purchase') and priced.charge_class is null
                then coalesce(nullif(priced.product_sku, ''), concat(priced.line_item_product_code, ':', priced.line_item_usage_type))
        end as "SkuId",
        case
            when priced.charge_category in ('Usage', 'Purchase') and priced.charge_class is null
                then coalesce(
                    nullif(priced.extras ->> 'pricing_rate_id', ''),
                    concat(
                        coalesce(nullif(priced.product_sku, ''), concat(priced.line_item_product_code, ':', priced.line_item_usage_type)),
                        ':', coalesce(nullif(priced.pricing_term, ''), 'OnDemand')
                    )
                )
        end as "SkuPriceId",

        case
            when priced.charge_category in ('Usage', 'Purchase') and priced.charge_class is null
                then priced.line_item_usage_type
        end as "SkuMeter",
        case
            when priced.charge_category in ('Usage', 'Purchase') and priced.charge_class is null
                then cast(jsonb_strip_nulls(jsonb_build_object(
                    'x_UsageType', priced.line_item_usage_type,
                    'x_Operation', nullif(priced.line_item_operation, ''),
                    'x_PricingTerm', coalesce(nullif(priced.pricing_term, ''), 'OnDemand')
                )) as text)
        end as "SkuPriceDetails",

        ---------- commitment discounts (RIs, Savings Plans) and capacity reservations
        priced.commitment_discount_id as "CommitmentDiscountId",
        case
            when priced.commitment_discount_id is not null then regexp_replace(priced.commitment_discount_id, '^.*[:/]', '')
        end as "CommitmentDiscountName",
        case
            when priced.commitment_discount_id is null then null
            when priced.line_item_line_item_type in ('DiscountedUsage', 'RIFee') then 'Usage'
            else 'Spend'
        end as "CommitmentDiscountCategory",
        case
            when priced.commitment_discount_id is null then null
            when priced.line_item_line_item_type in ('DiscountedUsage', 'RIFee') then 'Reserved Instance'
            else 'Savings Plan'
        end as "CommitmentDiscountType",
        case
            when priced.commitment_discount_id is not null and priced.charge_category = 'Usage' then 'Used'
        end as "CommitmentDiscountStatus",
        -- Quantity of the commitment's unit: hours of an RI, the currency of a Savings Plan.
        case
            when priced.commitment_discount_id is null or priced.charge_class is not null then null
            when priced.line_item_line_item_type in ('DiscountedUsage', 'RIFee') then priced.line_item_usage_amount
            when priced.line_item_line_item_type = 'SavingsPlanCoveredUsage' then priced.savings_plan_savings_plan_effective_cost
            when priced.line_item_line_item_type = 'SavingsPlanRecurringFee' then priced.savings_plan_total_commitment_to_date
        end as "CommitmentDiscountQuantity",
        case
            when priced.commitment_discount_id is null or priced.charge_class is not null then null
            when priced.line_item_line_item_type in ('DiscountedUsage', 'RIFee') then 'Hours'
            when priced.line_item_line_item_type in ('SavingsPlanCoveredUsage', 'SavingsPlanRecurringFee')
                then coalesce(nullif(priced.line_item_currency_code, ''), 'USD')
        end as "CommitmentDiscountUnit",
        cast(nullif(priced.extras ->> 'capacity_reservation_capacity_reservation_arn', '') as text) as "CapacityReservationId",
        case
            when nullif(priced.extras ->> 'capacity_reservation_capacity_reservation_arn', '') is null then null
            when priced.line_item_usage_type ilike '%Unused%' then 'Unused'
            else 'Used'
        end as "CapacityReservationStatus",

        ---------- where and what
        nullif(priced.line_item_availability_zone, '') as "AvailabilityZone",
        nullif(priced.product_region_code, '') as "RegionId",
        case
            when nullif(priced.product_region_code, '') is not null
                then coalesce(regions.region_name, nullif(priced.extras ->> 'product_location', ''), priced.product_region_code)
        end as "RegionName",
        nullif(priced.line_item_resource_id, '') as "ResourceId",
        cast(null as text) as "ResourceName",
        case
            when nullif(priced.line_item_resource_id, '') is not null then coalesce(services.resource_type, 'Resource')
        end as "ResourceType",
        coalesce(services.service_name, nullif(priced.product_product_name, ''), priced.line_item_product_code, 'Unknown') as "ServiceName",
        coalesce(services.service_category, 'Other') as "ServiceCategory",
        coalesce(services.service_subcategory, 'Other (Other)') as "ServiceSubcategory",
        nullif(priced.line_item_usage_account_id, '') as "SubAccountId",
        coalesce(
            nullif(priced.extras ->> 'line_item_usage_account_name', ''),
            case when nullif(priced.line_item_usage_account_id, '') is not null then concat('AWS account ', priced.line_item_usage_account_id) end
        ) as "SubAccountName",
        case when priced.tags <> '{}'::jsonb then cast(priced.tags as text) end as "Tags",

        ---------- ours (x_): the CUR line, its type and the tenant tag
        priced.billing_period as "x_BillingPeriod",
        priced.cost_line_id as "x_CostLineId",
        priced.delivery_id as "x_DeliveryId",
        priced.line_seq as "x_LineSeq",
        priced.line_item_line_item_type as "x_LineItemType",
        priced.line_item_product_code as "x_ProductCode",
        priced.line_item_usage_type as "x_UsageType",
        priced.line_item_operation as "x_Operation",
        priced.unblended_cost as "x_UnblendedCost",
        priced.amortized_cost as "x_AmortizedCost",
        nullif(priced.bill_invoicing_entity, '') as "x_InvoicingEntity",
        priced.resource_tags_user_tenant_id as "x_TenantId",
        priced.is_final as "x_IsFinal"

    from priced
    left join services on priced.line_item_product_code = services.product_code
    left join regions on priced.product_region_code = regions.region_id

)

select * from final
