with

source as (

    select * from {{ source('events', 'events') }}

),

renamed as (

    select

        ---------- ids
        event_id,
        idempotency_key,
        subscription_id,

        ---------- text
        event_type,
        signature,
        source_file,
        line_no,

        ---------- numerics
        -- The loader guarantees these are JSON numbers (or absent) and never negative.
        {{ json_number('properties', "'tokens'") }} as tokens,
        {{ json_number('properties', "'bytes'") }} as bytes,
        {{ json_number('properties', "'duration_ms'") }} as duration_ms,
        properties,

        ---------- timestamps
        {{ adapter.quote('timestamp') }} as occurred_at,
        partition_date,
        loaded_at

    from source

)

select * from renamed
