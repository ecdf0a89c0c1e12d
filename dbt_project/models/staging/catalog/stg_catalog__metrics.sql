with

source as (

    select * from {{ source('catalog', 'catalog_metrics') }}

),

renamed as (

    select

        ---------- ids
        metric_code,

        ---------- text
        event_type,
        lower(aggregation) as aggregation,
        property,
        unit

    from source

)

select * from renamed
