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
        cast(properties ->> 'tokens' as numeric) as tokens,
        cast(properties ->> 'bytes' as numeric) as bytes,
        cast(properties ->> 'duration_ms' as numeric) as duration_ms,
        properties,

        ---------- timestamps
        "timestamp" as occurred_at,
        partition_date,
        loaded_at

    from source

)

select * from renamed
