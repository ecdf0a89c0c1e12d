with

source as (

    select * from {{ source('catalog', 'catalog_tax_rates') }}

),

renamed as (

    select

        ---------- ids
        upper(country) as country,

        ---------- numerics
        cast(rate as numeric) as rate,

        ---------- dates
        valid_from,
        valid_to

    from source

)

select * from renamed
