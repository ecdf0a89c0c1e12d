{#- The payment reconciliation report: every issued invoice document (void ones too, since a
    payment may still reach them) with what is owed (total less credit notes), what its
    payments applied and refunded, what is outstanding, the open mismatches, and the state
    of the draft it was issued from in invoice_header. -#}
with

issued as (

    select * from {{ ref('stg_billing__invoices') }}

),

balances as (

    select * from {{ ref('stg_payments__invoice_balances') }}

),

headers as (

    select * from {{ ref('invoice_header') }}

),

payments as (

    select * from {{ ref('int_payments_aggregated_to_invoices') }}

),

joined as (

    select
        issued.invoice_id as issued_invoice_id,
        issued.invoice_number,
        issued.draft_id as invoice_id,
        issued.tenant_id,
        issued.subscription_id,
        issued.period_start,
        issued.currency,
        issued.status,
        headers.status as header_status,
        issued.total,
        balances.credited,
        balances.balance_due,
        coalesce(payments.amount_applied, 0) as amount_applied,
        coalesce(payments.amount_not_applied, 0) as amount_not_applied,
        coalesce(payments.amount_refunded, 0) as amount_refunded,
        coalesce(payments.succeeded_count, 0) as succeeded_count,
        coalesce(payments.failed_count, 0) as failed_count,
        coalesce(payments.refunded_count, 0) as refunded_count,
        coalesce(payments.open_mismatch_count, 0) as open_mismatch_count,
        payments.last_paid_at
    from issued
    inner join balances
        on balances.invoice_id = issued.invoice_id
    left join headers
        on headers.issued_invoice_id = issued.invoice_id
    left join payments
        on payments.invoice_id = issued.invoice_id

)

select
    *,
    case when status = 'void' then 0 else balance_due - amount_applied end as amount_outstanding,
    case
        when status = 'void' then 'void'
        when amount_applied = 0 then 'unpaid'
        when amount_applied < balance_due then 'partially_paid'
        when amount_applied = balance_due then 'settled'
        else 'overpaid'
    end as payment_state,
    open_mismatch_count > 0 as has_open_mismatch
from joined
