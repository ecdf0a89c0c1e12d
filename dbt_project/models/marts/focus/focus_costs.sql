{#- Our AWS cost data as a FinOps FOCUS 1.2 Cost and Usage dataset: one row per CUR line of the
    live delivery of each billing period (fact_cost_raw), plus one "Unused" row per commitment fee
    line (RIFee, SavingsPlanRecurringFee) with an unused part, so BilledCost sums to fact_cost_raw's
    billed_cost and EffectiveCost to its net_amortized_cost (except on plain fees, which FOCUS
    counts as purchases: see EffectiveCost). Mapping and choices: docs/focus.md.
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

    select * from {{ ref('aws_services') }}

),

pricing_units as (

    select * from {{ ref('aws_pricing_units') }}

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
        ('ap-northeast-1', 'Asia Pacific (Tokyo)')

),

-- Each CUR line once, and the unused part of a commitment fee a second time (is_unused): FOCUS
-- shows unused commitment as its own Usage rows with CommitmentDiscountStatus "Unused".
charges as (

    select
        cost_lines.*,
        parts.is_unused
    from cost_lines
    cross join lateral (values (false), (true)) as parts (is_unused)
    where not parts.is_unused
        or (
            cost_lines.line_item_line_item_type in ('RIFee', 'SavingsPlanRecurringFee')
            and cost_lines.net_amortized_cost <> 0
        )

),

joined as (

    select
        charges.*,
        line_items.bill_invoicing_entity,
        line_items.bill_billing_entity,
        line_items.line_item_availability_zone,
        line_items.line_item_line_item_description,
        line_items.line_item_unblended_rate,
        line_items.line_item_net_unblended_rate,
        line_items.pricing_public_on_demand_cost,
        line_items.pricing_public_on_demand_rate,
        line_items.pricing_unit,
        line_items.pricing_term,
        line_items.pricing_rate_code,
        line_items.pricing_rate_id,
        line_items.product_sku,
        line_items.product_product_name,
        line_items.product_location,
        line_items.reservation_reservation_a_r_n,
        line_items.reservation_unused_quantity,
        line_items.savings_plan_savings_plan_a_r_n,
        line_items.savings_plan_savings_plan_effective_cost,
        line_items.savings_plan_total_commitment_to_date,
        -- FOCUS ChargeCategory / ChargeClass / ChargeFrequency from the line item type.
        case
            when charges.is_unused then 'Usage'
            when charges.line_item_line_item_type in (
                'Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation'
            ) then 'Usage'
            when charges.line_item_line_item_type in ('Fee', 'RIFee', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee')
                then 'Purchase'
            when charges.line_item_line_item_type = 'Tax' then 'Tax'
            when charges.line_item_line_item_type in (
                'Credit', 'BundledDiscount', 'Discount', 'EdpDiscount', 'PrivateRateDiscount'
            ) then 'Credit'
            else 'Adjustment'  -- Refund and anything AWS adds later
        end as charge_category,
        case
            when charges.line_item_line_item_type = 'Refund' or charges.bill_bill_type = 'Refund'
                then 'Correction'
        end as charge_class,
        case
            when charges.is_unused
                or charges.line_item_line_item_type in (
                    'Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation'
                ) then 'Usage-Based'
            when charges.line_item_line_item_type in ('RIFee', 'SavingsPlanRecurringFee')
                then 'Recurring'
            else 'One-Time'
        end as charge_frequency,
        -- The commitment (RI or Savings Plan) a line belongs to, when the CUR names it: the
        -- reservation's usage, fee and upfront payment, the savings plan's covered usage,
        -- negations and fees.
        case
            when charges.line_item_line_item_type in ('DiscountedUsage', 'RIFee', 'Fee')
                then nullif(line_items.reservation_reservation_a_r_n, '')
            when charges.line_item_line_item_type in (
                'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee'
            )
                then nullif(line_items.savings_plan_savings_plan_a_r_n, '')
        end as commitment_discount_id,
        case
            when charges.line_item_line_item_type in ('DiscountedUsage', 'RIFee', 'Fee') then 'Reserved Instance'
            else 'Savings Plan'
        end as commitment_discount_type,
        -- The unit the quantity is priced in: AWS's pricing unit in FOCUS's unit format
        -- (seeds/aws_pricing_units.csv, matched case-insensitively; an unmapped unit passes
        -- through and fails the seed's coverage test), else one read off the usage type
        -- (generated and some legacy CURs leave pricing/unit empty).
        coalesce(
            pricing_units.focus_unit,
            nullif(trim(line_items.pricing_unit), ''),
            case
                when charges.line_item_usage_type ilike '%ByteHrs%' then 'GB-Hours'
                when charges.line_item_usage_type ~* '(BoxUsage|InstanceUsage|hosting|-Hrs|Hours)' then 'Hours'
                when charges.line_item_usage_type ilike '%Request%' then 'Requests'
                when charges.line_item_usage_type ilike '%Bytes%' then 'GB'
                when charges.line_item_usage_type ilike '%Metric%' then 'Metrics'
                else 'Units'
            end
        ) as usage_unit
    from charges
    inner join line_items
        on charges.delivery_id = line_items.delivery_id
        and charges.line_seq = line_items.line_seq
    left join pricing_units
        on lower(trim(line_items.pricing_unit)) = lower(pricing_units.aws_unit)

),

priced as (

    select
        joined.*,
        -- FOCUS EffectiveCost: fact_cost_raw's net amortised cost (AWS's rule, net of negotiated
        -- discounts), moved where FOCUS wants it: a Purchase row is 0 (a commitment's payment is
        -- amortised into the usage it covers; the unused part of a commitment fee is on its own
        -- "Unused" row), and so is a plain Fee, which the validator cannot tell from one.
        case
            when joined.is_unused then joined.net_amortized_cost
            when joined.charge_category = 'Purchase' then 0
            else joined.net_amortized_cost
        end as effective_cost,
        case when joined.is_unused then 0 else joined.billed_cost end as charge_billed_cost,
        -- Quantities and unit prices only for what is priced per unit (Usage, Purchase);
        -- a negation line is negative usage, so its quantity is negative and its prices not.
        -- An unused commitment is priced in its own unit: unused RI hours, unused plan spend.
        case
            when joined.is_unused and joined.line_item_line_item_type = 'RIFee'
                then coalesce(joined.reservation_unused_quantity, 0)
            when joined.is_unused then joined.amortized_cost
            when joined.charge_category in ('Usage', 'Purchase') and joined.charge_class is null
                then coalesce(joined.line_item_usage_amount, 0)
                    * case when joined.line_item_line_item_type = 'SavingsPlanNegation' then -1 else 1 end
        end as pricing_quantity,
        case
            when joined.is_unused and joined.line_item_line_item_type = 'RIFee' then 'Hours'
            when joined.is_unused then coalesce(nullif(joined.line_item_currency_code, ''), 'USD')
            else joined.usage_unit
        end as pricing_unit_focus,
        case
            when joined.is_unused then 0
            when joined.charge_category in ('Usage', 'Purchase') and joined.charge_class is null
                then abs(coalesce(joined.pricing_public_on_demand_rate, joined.line_item_unblended_rate, 0))
        end as list_unit_price,
        case
            when joined.is_unused then 0
            when joined.charge_category in ('Usage', 'Purchase') and joined.charge_class is null
                then abs(coalesce(
                    joined.line_item_net_unblended_rate,
                    joined.line_item_unblended_rate,
                    joined.pricing_public_on_demand_rate,
                    0
                ))
        end as contracted_unit_price,
        case
            when joined.charge_category in ('Usage', 'Purchase') and joined.charge_class is null
                then coalesce(
                    nullif(joined.product_sku, ''), concat(joined.line_item_product_code, ':', joined.line_item_usage_type)
                )
        end as sku_id
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
        concat(
            case when priced.is_unused then 'Unused commitment: ' end,
            coalesce(
                nullif(priced.line_item_line_item_description, ''),
                concat(priced.line_item_line_item_type, ' ', priced.line_item_product_code)
            )
        ) as "ChargeDescription",
        priced.charge_frequency as "ChargeFrequency",
        coalesce(priced.line_item_usage_start_date, cast(priced.billing_period as timestamp) at time zone 'UTC') as "ChargePeriodStart",
        coalesce(
            priced.line_item_usage_end_date, cast(priced.billing_period + interval '1 month' as timestamp) at time zone 'UTC'
        ) as "ChargePeriodEnd",

        ---------- costs (numeric, the billing currency)
        priced.charge_billed_cost as "BilledCost",
        priced.effective_cost as "EffectiveCost",
        case
            when priced.list_unit_price is not null then priced.list_unit_price * priced.pricing_quantity
            else coalesce(priced.pricing_public_on_demand_cost, priced.charge_billed_cost)
        end as "ListCost",
        priced.list_unit_price as "ListUnitPrice",
        case
            when priced.contracted_unit_price is not null then priced.contracted_unit_price * priced.pricing_quantity
            else priced.charge_billed_cost
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
            when priced.is_unused then 'Committed'
            when priced.line_item_line_item_type in ('DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation') then 'Committed'
            when priced.line_item_usage_type ilike '%SpotUsage%' then 'Dynamic'
            when priced.charge_category = 'Purchase' and priced.commitment_discount_id is null and priced.line_item_line_item_type = 'Fee' then 'Other'
            else 'Standard'
        end as "PricingCategory",
        priced.pricing_quantity as "PricingQuantity",
        case when priced.pricing_quantity is not null then priced.pricing_unit_focus end as "PricingUnit",
        case
            when priced.charge_category = 'Usage' and priced.charge_class is null and not priced.is_unused
                then priced.pricing_quantity
        end as "ConsumedQuantity",
        case
            when priced.charge_category = 'Usage' and priced.charge_class is null and not priced.is_unused
                then priced.usage_unit
        end as "ConsumedUnit",
        priced.sku_id as "SkuId",
        -- One price of one SKU: AWS's rate code (SKU.offer term.rate code) already starts with its
        -- SKU; a rate id alone is shared by every SKU a reservation covers, so it is qualified by the SKU.
        case
            when priced.sku_id is null then null
            when starts_with(priced.pricing_rate_code, concat(priced.sku_id, '.')) then priced.pricing_rate_code
            else concat(
                priced.sku_id, ':',
                coalesce(priced.pricing_rate_code, priced.pricing_rate_id, nullif(priced.pricing_term, ''), 'OnDemand')
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
            when priced.commitment_discount_type = 'Reserved Instance' then 'Usage'
            else 'Spend'
        end as "CommitmentDiscountCategory",
        case when priced.commitment_discount_id is not null then priced.commitment_discount_type end
            as "CommitmentDiscountType",
        case
            when priced.commitment_discount_id is null then null
            when priced.is_unused then 'Unused'
            when priced.charge_category = 'Usage' then 'Used'
        end as "CommitmentDiscountStatus",
        -- Quantity of the commitment's unit: hours of an RI, the currency of a Savings Plan; on an
        -- Unused row the part of it left unused.
        case
            when priced.commitment_discount_id is null or priced.charge_class is not null then null
            when priced.is_unused then priced.pricing_quantity
            when priced.line_item_line_item_type in ('DiscountedUsage', 'RIFee') then priced.line_item_usage_amount
            when priced.line_item_line_item_type = 'SavingsPlanCoveredUsage' then priced.savings_plan_savings_plan_effective_cost
            when priced.line_item_line_item_type = 'SavingsPlanRecurringFee' then priced.savings_plan_total_commitment_to_date
        end as "CommitmentDiscountQuantity",
        case
            when priced.commitment_discount_id is null or priced.charge_class is not null then null
            when priced.is_unused then priced.pricing_unit_focus
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
        priced.product_region_code as "RegionId",
        case
            when priced.product_region_code is not null
                then coalesce(priced.product_location, regions.region_name, priced.product_region_code)
        end as "RegionName",
        nullif(priced.line_item_resource_id, '') as "ResourceId",
        cast(null as text) as "ResourceName",
        case
            when nullif(priced.line_item_resource_id, '') is not null then coalesce(services.resource_type, 'Resource')
        end as "ResourceType",
        -- AWS Marketplace lines carry a product id as product code: their name is the product's.
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
        concat(priced.cost_line_id, case when priced.is_unused then ':unused' end) as "x_CostLineId",
        priced.delivery_id as "x_DeliveryId",
        priced.line_seq as "x_LineSeq",
        priced.line_item_line_item_type as "x_LineItemType",
        priced.line_item_product_code as "x_ProductCode",
        priced.line_item_usage_type as "x_UsageType",
        priced.line_item_operation as "x_Operation",
        nullif(trim(priced.pricing_unit), '') as "x_AwsPricingUnit",
        case when priced.is_unused then 0 else priced.unblended_cost end as "x_UnblendedCost",
        case when priced.is_unused then 0 else priced.amortized_cost end as "x_AmortizedCost",
        case when priced.is_unused then 0 else priced.net_amortized_cost end as "x_NetAmortizedCost",
        nullif(priced.bill_invoicing_entity, '') as "x_InvoicingEntity",
        priced.resource_tags_user_tenant_id as "x_TenantId",
        priced.is_final as "x_IsFinal"

    from priced
    left join services on lower(priced.line_item_product_code) = lower(services.product_code)
    left join regions on priced.product_region_code = regions.region_id

)

select * from final
