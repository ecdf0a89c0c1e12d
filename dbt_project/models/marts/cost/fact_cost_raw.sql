{#- One row per CUR line of the live delivery of each billing period, with the three costs.
    Incremental (DESIGN.md: a big table) per billing period (macros/cost_periods.sql): a build
    re-derives only the periods whose live delivery differs from the one already here, or that
    were built with another tenant tag key (TENANT_TAG_KEY changed: the key is the column
    tenant_tag_key, so the next run rebuilds every period on the new key without a full
    refresh), replacing each such period whole (delete+insert keyed on billing_period; on Spark
    insert_overwrite of that partition, docs/spark.md), so a re-run never adds rows. -#}
{{
    config(
        materialized='incremental',
        tags=['heavy'],
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
        partition_by=(['billing_period'] if target.type == 'spark' else none),
        file_format='parquet',
        unique_key='billing_period',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['billing_period', 'line_seq'], 'unique': True},
            {'columns': ['billing_period', 'usage_date', 'line_item_product_code']},
        ],
    )
}}

with

line_items as (

    select * from {{ ref('stg_cur__line_items') }}

),

costed as (

    select
        -- ids
        concat(line_items.delivery_id, '-', line_items.line_seq) as cost_line_id,
        line_items.delivery_id,
        line_items.line_seq,
        line_items.identity_line_item_id,
        line_items.bill_invoice_id,
        line_items.bill_payer_account_id,
        line_items.line_item_usage_account_id,
        line_items.line_item_resource_id,

        -- classification
        line_items.bill_bill_type,
        line_items.line_item_line_item_type,
        line_items.line_item_product_code,
        line_items.line_item_usage_type,
        line_items.line_item_operation,
        line_items.line_item_currency_code,
        -- The currency the line's costs are in: AWS writes it on every line (USD when empty, as
        -- focus_costs reads it). Costs are summed per currency, never across.
        coalesce(nullif(line_items.line_item_currency_code, ''), 'USD') as billing_currency,
        line_items.product_region_code,

        -- dates
        line_items.billing_period,
        line_items.line_item_usage_start_date,
        line_items.line_item_usage_end_date,
        coalesce({{ utc_date('line_items.line_item_usage_start_date') }}, line_items.billing_period) as usage_date,

        -- amounts
        line_items.line_item_usage_amount,
        coalesce(line_items.line_item_unblended_cost, 0) as unblended_cost,
        line_items.line_item_net_unblended_cost as net_unblended_cost,
        -- What AWS bills: net of discounts where the net columns exist.
        coalesce(line_items.line_item_net_unblended_cost, line_items.line_item_unblended_cost, 0) as billed_cost,
        -- AWS's amortised and net amortised cost by line item type (macros/cur_cost.sql).
        {{ cur_amortized_cost('line_items') }} as amortized_cost,
        {{ cur_amortized_cost('line_items', net=true) }} as net_amortized_cost,

        -- tags
        nullif({{ json_text('line_items.tags', [cur_tag_key()]) }}, '') as resource_tags_user_tenant_id,
        {{ cur_tag_key() }} as tenant_tag_key,
        line_items.tags,
        line_items.extras,

        -- flags
        line_items.bill_invoice_id is not null and line_items.bill_invoice_id <> '' as is_final,

        -- the dbt invocation that derived the period (macros/cost_periods.sql)
        '{{ invocation_id }}' as dbt_invocation_id

    from line_items
    where {{ cost_periods_to_rebuild('line_items.billing_period') }}

)

select * from costed
