with

source as (

    select * from {{ source('catalog', 'catalog_subscriptions') }}

),

renamed as (

    select

        ---------- ids
        subscription_id,
        tenant_id,
        plan_id,

        ---------- timestamps
        started_at,
        ended_at

    from source

)

select * from renamed
