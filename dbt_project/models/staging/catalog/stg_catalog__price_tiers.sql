with

source as (

    select * from {{ source('catalog', 'catalog_price_tiers') }}

),

renamed as (

    select

        ---------- ids
        plan_id,
        metric_code,
        tier,

        ---------- numerics
        cast(up_to as numeric) as up_to,
        {{ money('unit_price') }} as unit_price,
        {{ money('flat_fee') }} as flat_fee

    from source

)

select * from renamed
