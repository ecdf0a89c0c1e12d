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
        bill_invoice_id,

        ---------- text
        format,
        report_name,
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

        ---------- drift
        columns,
        extra_columns,
        columns_added,
        columns_removed

    from source

)

select * from renamed
