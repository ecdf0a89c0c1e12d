with

source as (

    select * from {{ source('events', 'ingested_files') }}

),

renamed as (

    select

        ---------- ids
        source_file,
        checksum,

        ---------- text
        feed,
        file_format,

        ---------- numerics
        size_bytes,
        rows_read,
        rows_loaded,
        duplicates,
        rejected,

        ---------- timestamps
        partition_date,
        loaded_at

    from source
    where feed = 'events'

)

select * from renamed
