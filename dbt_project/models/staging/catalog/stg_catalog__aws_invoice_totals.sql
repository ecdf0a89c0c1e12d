with

source as (

    select * from {{ source('catalog', 'catalog_aws_invoice_totals') }}

),

renamed as (

    select

        ---------- ids
        billing_period,
        invoice_id,

        ---------- text
        upper(currency) as currency,

        ---------- numerics
        {{ money('total') }} as total

    from source

)

select * from renamed
