with

source as (

    select * from {{ source('catalog', 'catalog_quotas') }}

),

renamed as (

    select

        ---------- ids
        subscription_id,
        event_type,

        ---------- text
        lower(period) as period,
        lower(action) as action,

        ---------- numerics
        cast(limit_value as numeric) as limit_value,
        {{ money('overage_unit_price') }} as overage_unit_price

    from source

)

select * from renamed
