with

source as (

    select * from {{ source('catalog', 'catalog_budgets') }}

),

renamed as (

    select

        ---------- ids
        budget_id,
        scope_id,

        ---------- text
        lower(scope_type) as scope_type,
        lower(period) as period,
        upper(currency) as currency,

        ---------- numerics
        {{ money('amount') }} as amount,
        thresholds,

        ---------- timestamps
        loaded_at

    from source

)

select * from renamed
