{#- Payment exceptions for recon_exceptions: every open payment mismatch the loader recorded
    (unknown invoice, another currency, a void or already paid invoice, over- or underpaid, a
    refund), one row per payment: key PAYMENT_MISMATCH:<payment_id>, amount = what is at stake
    in the payment's currency (named in detail). A partial payment completed later, or a
    mismatched payment refunded, is resolved and no longer shown. -#}
with

mismatches as (

    select * from {{ ref('stg_payments__mismatches') }}

),

open_mismatches as (

    select
        payment_id,
        min(period_start) as period_start,
        string_agg(detail, '; ' order by status) as detail,
        sum(amount) as amount
    from mismatches
    where not is_resolved
    group by payment_id

)

select
    'RECON-' || to_char(period_start, 'YYYY-MM') as recon_id,
    period_start,
    'Payment' as category,
    'PAYMENT_MISMATCH:' || payment_id as key,
    detail,
    amount
from open_mismatches
