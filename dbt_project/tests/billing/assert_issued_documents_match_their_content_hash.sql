-- Every issued document is still what was issued: its stored content hash equals the hash of
-- its stored rows, recomputed by the one definition (billing.invoice_content_hash and
-- billing.credit_note_content_hash, include/meterline/sql/090_billing_owner.sql). The gate's
-- content_hash check (include/meterline/invoicing/integrity.py) asserts the same. Returns every
-- document that differs.
with

invoices as (

    select
        'invoice' as document_kind,
        invoice_number as document_number,
        content_hash as stored_hash,
        billing.invoice_content_hash(invoice_id) as recomputed_hash
    from {{ source('billing', 'invoices') }}

),

credit_notes as (

    select
        'credit_note' as document_kind,
        credit_note_number as document_number,
        content_hash as stored_hash,
        billing.credit_note_content_hash(credit_note_id) as recomputed_hash
    from {{ source('billing', 'credit_notes') }}

),

documents as (

    select * from invoices
    union all
    select * from credit_notes

)

select *
from documents
where stored_hash is distinct from recomputed_hash
