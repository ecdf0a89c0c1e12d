with

source as (

    select * from {{ source('billing', 'credit_applications') }}

),

renamed as (

    select

        ---------- ids
        grant_id,
        invoice_id,

        ---------- numerics
        {{ money('amount') }} as amount,

        ---------- timestamps
        applied_at

    from source

)

select * from renamed
