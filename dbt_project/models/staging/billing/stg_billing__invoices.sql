with

source as (

    select * from {{ source('billing', 'invoices') }}

),

renamed as (

    select

        ---------- ids
        invoice_id,
        invoice_number,
        draft_id,
        tenant_id,
        subscription_id,
        replaces_invoice_id,

        ---------- text
        currency,
        status,
        void_reason,
        voided_by,
        content_hash,

        ---------- numerics
        {{ money('subtotal') }} as subtotal,
        {{ money('credits') }} as credits,
        {{ money('tax') }} as tax,
        {{ money('total') }} as total,

        ---------- booleans
        status <> 'void' as is_live,

        ---------- dates
        period_start,
        period_end,

        ---------- timestamps
        created_at,
        issued_at,
        voided_at,
        updated_at

    from source

)

select * from renamed
