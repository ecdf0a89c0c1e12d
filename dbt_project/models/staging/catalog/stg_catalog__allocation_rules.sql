with

source as (

    select * from {{ source('catalog', 'catalog_allocation_rules') }}

),

renamed as (

    select

        ---------- ids
        rule_version,
        service,

        ---------- text
        lower(method) as method,
        driver_metric,

        ---------- dates
        valid_from,
        valid_to

    from source

)

select * from renamed
