with

source as (

    select * from {{ source('cur', 'cur_deliveries') }}

),

renamed as (

    select

        ---------- ids
        delivery_id,
        delivery_key,
        assembly_id,
        superseded_by,
        drift_against,
        bill_invoice_id,

        ---------- text
        format,
        report_name,
        delivery_group,
        status,
        error,
        manifest_path,
        checksum,

        ---------- numerics
        row_count,
        {{ money('unblended_cost') }} as unblended_cost,
        {{ money('billed_cost') }} as billed_cost,

        ---------- booleans
        is_final,
        status = 'loaded' and superseded_by is null as is_live,

        ---------- dates and timestamps
        billing_period,
        delivered_at,
        loaded_at,
        superseded_at,

        ---------- drift and currencies
        drift_basis,
        columns,
        extra_columns,
        columns_added,
        columns_removed,
        tag_keys,
        tag_keys_added,
        tag_keys_removed,
        currencies

    from source

)

select * from renamed
