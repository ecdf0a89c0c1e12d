with

source as (

    select * from {{ source('payments', 'payment_txn') }}

),

renamed as (

    select

        ---------- ids
        payment_id,
        invoice_id,
        invoice_number,

        ---------- text
        status,
        match_status,
        currency,
        source_file,
        line_no,

        ---------- numerics
        {{ money('amount') }} as amount,
        {{ money('amount_usd') }} as amount_usd,

        ---------- booleans
        match_status = 'applied' as is_applied,

        ---------- timestamps
        paid_at,
        loaded_at

    from source

)

select * from renamed
