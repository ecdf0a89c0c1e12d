with

source as (

    select * from {{ source('events', 'events_rejected') }}

),

renamed as (

    select

        ---------- ids
        rejected_id,
        idempotency_key,

        ---------- text
        source_file,
        checksum,
        line_no,
        reason,
        raw_record,

        ---------- timestamps
        "timestamp" as occurred_at,
        partition_date,
        rejected_at

    from source

)

select * from renamed
