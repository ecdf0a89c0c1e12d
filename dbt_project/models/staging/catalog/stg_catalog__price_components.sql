with

source as (

    select * from {{ source('catalog', 'catalog_price_components') }}

),

renamed as (

    select

        ---------- ids
        plan_id,
        metric_code,

        ---------- text
        lower(model) as model,

        ---------- numerics
        cast(included_units as numeric) as included_units,
        {{ money('unit_price') }} as unit_price,
        cast(package_size as numeric) as package_size

    from source

)

select * from renamed
