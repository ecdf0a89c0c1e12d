{#- Latest delivery per billing period only. The loader keeps exactly one delivery per period
    in raw.cur_line_items (it swaps partitions), so this filter is a guard: should a superseded
    delivery's rows ever remain, they never reach the marts.

    Region: `product/regionCode` (product_region_code) only appears in later CURs and is empty
    for global services; older CURs carry the code in `product/region` (extras.product_region), CUR
    2.0 in its product map (extras.product.region). The first non-empty one is the line's region;
    `global` and Tax lines have none (a tax line is charged per service, not per region).

    Columns AWS adds only when they apply (net columns when a discount applies, rate ids, unused
    RI quantity) are not typed in raw: they come out of extras here, cast like the typed ones. -#}
with

source as (

    select * from {{ source('cur', 'cur_line_items') }}

),

live_deliveries as (

    select delivery_id
    from {{ source('cur', 'cur_deliveries') }}
    where status = 'loaded' and superseded_by is null

),

renamed as (

    select

        ---------- ids
        delivery_id,
        line_seq,
        identity_line_item_id,
        bill_invoice_id,
        bill_payer_account_id,
        line_item_usage_account_id,
        line_item_resource_id,
        reservation_reservation_a_r_n,
        savings_plan_savings_plan_a_r_n,

        ---------- text
        source_file,
        source_line,
        identity_time_interval,
        bill_bill_type,
        bill_billing_entity,
        bill_invoicing_entity,
        line_item_line_item_type,
        line_item_product_code,
        line_item_usage_type,
        line_item_operation,
        line_item_availability_zone,
        line_item_currency_code,
        line_item_line_item_description,
        line_item_tax_type,
        line_item_legal_entity,
        product_product_name,
        product_servicecode,
        case
            when coalesce(line_item_line_item_type, '') <> 'Tax' then nullif(lower(coalesce(
                nullif(trim(product_region_code), ''),
                nullif(trim({{ json_text('extras', ["'product_region'"]) }}), ''),
                nullif(trim({{ json_text('extras', ["'product'", "'region'"]) }}), '')
            )), 'global')
        end as product_region_code,
        nullif(trim({{ json_text('extras', ["'product_location'"]) }}), '') as product_location,
        product_product_family,
        product_instance_type,
        product_sku,
        pricing_term,
        pricing_unit,
        nullif({{ json_text('extras', ["'pricing_rate_code'"]) }}, '') as pricing_rate_code,
        nullif({{ json_text('extras', ["'pricing_rate_id'"]) }}, '') as pricing_rate_id,

        ---------- numerics
        line_item_usage_amount,
        line_item_normalization_factor,
        line_item_normalized_usage_amount,
        line_item_unblended_rate,
        {{ money('line_item_unblended_cost') }} as line_item_unblended_cost,
        line_item_blended_rate,
        {{ money('line_item_blended_cost') }} as line_item_blended_cost,
        line_item_net_unblended_rate,
        {{ money('line_item_net_unblended_cost') }} as line_item_net_unblended_cost,
        {{ money('pricing_public_on_demand_cost') }} as pricing_public_on_demand_cost,
        pricing_public_on_demand_rate,
        {{ money('reservation_effective_cost') }} as reservation_effective_cost,
        {{ money('reservation_net_effective_cost') }} as reservation_net_effective_cost,
        {{ money('reservation_amortized_upfront_fee_for_billing_period') }} as reservation_amortized_upfront_fee_for_billing_period,
        {{ money('reservation_amortized_upfront_cost_for_usage') }} as reservation_amortized_upfront_cost_for_usage,
        {{ money('reservation_recurring_fee_for_usage') }} as reservation_recurring_fee_for_usage,
        {{ money('reservation_unused_amortized_upfront_fee_for_billing_period') }} as reservation_unused_amortized_upfront_fee_for_billing_period,
        {{ money('reservation_unused_recurring_fee') }} as reservation_unused_recurring_fee,
        cast(nullif({{ json_text('extras', ["'reservation_unused_quantity'"]) }}, '') as {{ exact_numeric() }}) as reservation_unused_quantity,
        {{ money("nullif(" ~ json_text('extras', ["'reservation_net_amortized_upfront_fee_for_billing_period'"]) ~ ", '')") }}
            as reservation_net_amortized_upfront_fee_for_billing_period,
        {{ money("nullif(" ~ json_text('extras', ["'reservation_net_unused_amortized_upfront_fee_for_billing_period'"]) ~ ", '')") }}
            as reservation_net_unused_amortized_upfront_fee_for_billing_period,
        {{ money("nullif(" ~ json_text('extras', ["'reservation_net_unused_recurring_fee'"]) ~ ", '')") }} as reservation_net_unused_recurring_fee,
        savings_plan_savings_plan_rate,
        {{ money('savings_plan_savings_plan_effective_cost') }} as savings_plan_savings_plan_effective_cost,
        {{ money('savings_plan_net_savings_plan_effective_cost') }} as savings_plan_net_savings_plan_effective_cost,
        {{ money('savings_plan_total_commitment_to_date') }} as savings_plan_total_commitment_to_date,
        {{ money('savings_plan_used_commitment') }} as savings_plan_used_commitment,
        {{ money('savings_plan_amortized_upfront_commitment_for_billing_period') }} as savings_plan_amortized_upfront_commitment_for_billing_period,
        {{ money('savings_plan_recurring_commitment_for_billing_period') }} as savings_plan_recurring_commitment_for_billing_period,
        {{ money("nullif(" ~ json_text('extras', ["'savings_plan_net_amortized_upfront_commitment_for_billing_period'"]) ~ ", '')") }}
            as savings_plan_net_amortized_upfront_commitment_for_billing_period,
        {{ money("nullif(" ~ json_text('extras', ["'savings_plan_net_recurring_commitment_for_billing_period'"]) ~ ", '')") }}
            as savings_plan_net_recurring_commitment_for_billing_period,

        ---------- json
        tags,
        extras,

        ---------- dates and timestamps
        billing_period,
        bill_billing_period_start_date,
        bill_billing_period_end_date,
        line_item_usage_start_date,
        line_item_usage_end_date

    from source
    where delivery_id in (select live_deliveries.delivery_id from live_deliveries)

)

select * from renamed
