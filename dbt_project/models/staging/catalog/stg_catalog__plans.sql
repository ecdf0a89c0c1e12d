with

source as (

    select * from {{ source('catalog', 'catalog_plans') }}

),

renamed as (

    select

        ---------- ids
        plan_id,

        ---------- text
        name,
        upper(currency) as currency,

        ---------- numerics
        {{ money('monthly_base_fee') }} as monthly_base_fee,
        {{ money('minimum_commitment') }} as minimum_commitment

    from source

)

select * from renamed
