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
        billing_email,
        -- optional: the postal address (lines as written) and VAT id the documents print
        nullif(trim(address), '') as address,
        nullif(trim(vat_id), '') as vat_id

    from source

)

select * from renamed
