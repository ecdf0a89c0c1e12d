with

source as (

    select * from {{ source('catalog', 'catalog_tenants') }}

),

renamed as (

    select

        ---------- ids
        tenant_id,

        ---------- text
        name,
        upper(country) as country,
        upper(currency) as currency,
        billing_email

    from source

)

select * from renamed
