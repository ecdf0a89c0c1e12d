with

source as (

    select * from {{ source('billing', 'credit_grants') }}

),

renamed as (

    select

        ---------- ids
        grant_id,
        tenant_id,

        ---------- text
        currency,
        reason,
        created_by,

        ---------- numerics
        {{ money('amount') }} as amount,

        ---------- timestamps
        created_at

    from source

)

select * from renamed
