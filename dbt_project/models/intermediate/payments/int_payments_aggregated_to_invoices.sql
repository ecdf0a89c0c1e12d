{#- Per issued invoice: what its payments did (applied, refunded, failed attempts) and how many
    of its mismatches are still open. -#}
with

transactions as (

    select * from {{ ref('stg_payments__transactions') }}

),

mismatches as (

    select * from {{ ref('stg_payments__mismatches') }}

),

paid as (

    select
        invoice_id,
        coalesce(sum(amount) filter (where status = 'succeeded' and is_applied), 0) as amount_applied,
        coalesce(sum(amount) filter (where status = 'succeeded' and not is_applied), 0) as amount_not_applied,
        coalesce(sum(amount) filter (where status = 'refunded'), 0) as amount_refunded,
        count(*) filter (where status = 'succeeded') as succeeded_count,
        count(*) filter (where status = 'failed') as failed_count,
        count(*) filter (where status = 'refunded') as refunded_count,
        max(paid_at) filter (where status = 'succeeded' and is_applied) as last_paid_at
    from transactions
    where invoice_id is not null
    group by invoice_id

),

open_mismatches as (

    select
        invoice_id,
        count(*) as open_mismatch_count
    from mismatches
    where not is_resolved and invoice_id is not null
    group by invoice_id

)

select
    paid.*,
    coalesce(open_mismatches.open_mismatch_count, 0) as open_mismatch_count
from paid
left join open_mismatches
    on open_mismatches.invoice_id = paid.invoice_id
