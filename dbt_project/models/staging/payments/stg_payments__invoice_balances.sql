with

source as (

    select * from {{ source('payments', 'invoice_balances') }}

),

renamed as (

    select

        ---------- ids
        invoice_id,
        invoice_number,
        tenant_id,

        ---------- text
        currency,
        status,

        ---------- numerics
        {{ money('total') }} as total,
        {{ money('credited') }} as credited,
        {{ money('balance_due') }} as balance_due

    from source

)

select * from renamed
