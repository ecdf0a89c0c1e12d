with

source as (

    select * from {{ source('billing', 'invoice_line_items') }}

),

renamed as (

    select

        ---------- ids
        invoice_id,
        line_no,

        ---------- text
        kind,
        metric_code,
        description,

        ---------- numerics
        cast(quantity as numeric) as quantity,
        {{ money('unit_price') }} as unit_price,
        {{ money('amount') }} as amount

    from source

)

select * from renamed
