with

source as (

    select * from {{ source('budgets', 'budgets') }}

),

renamed as (

    select

        ---------- ids
        budget_id,
        scope_id,

        ---------- text
        scope_type,
        currency,

        ---------- numerics
        {{ money('amount') }} as amount,
        thresholds,

        ---------- timestamps
        loaded_at

    from source

)

select * from renamed
