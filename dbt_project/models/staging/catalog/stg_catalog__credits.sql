with

source as (

    select * from {{ source('catalog', 'catalog_credits') }}

),

renamed as (

    select

        ---------- ids
        credit_id,
        tenant_id,

        ---------- text
        upper(currency) as currency,
        reason,
        created_by,

        ---------- numerics
        {{ money('amount') }} as amount,

        ---------- timestamps
        created_at

    from source

)

select * from renamed
