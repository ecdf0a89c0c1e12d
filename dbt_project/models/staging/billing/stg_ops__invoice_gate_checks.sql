with

source as (

    select * from {{ source('ops', 'invoice_gate') }}

),

renamed as (

    select

        ---------- ids
        gate_row_id,
        run_id,
        invoice_id,

        ---------- text
        check_name,
        scope,
        reason,

        ---------- booleans
        passed,
        overridden,

        ---------- dates
        period_start,

        ---------- timestamps
        decided_at

    from source

)

select * from renamed
