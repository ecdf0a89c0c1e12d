with

source as (

    select * from {{ source('payments', 'payment_mismatches') }}

),

renamed as (

    select

        ---------- ids
        payment_id,
        invoice_id,
        invoice_number,

        ---------- text
        status,
        reason,
        currency,
        detail,
        resolved_by,

        ---------- numerics
        {{ money('amount') }} as amount,

        ---------- booleans
        resolved_at is not null as is_resolved,

        ---------- dates
        period_start,

        ---------- timestamps
        detected_at,
        resolved_at

    from source

)

select * from renamed
