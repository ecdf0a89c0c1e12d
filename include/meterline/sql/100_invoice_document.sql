-- What an invoice needs to be sent and paid (issue 19), kept with the issued document so that
-- a document rendered again from the warehouse reads, and hashes, exactly as it did at issue
-- (the catalog and the configuration may change later):
--   * the buyer's postal address and VAT id: optional catalog columns (tenants.csv), so
--     exports without them still load;
--   * the tax country and rate the draft was taxed with, the service period actually billed
--     (a subscription started or ended mid-month), the due date from the payment terms;
--   * the seller's name, address and VAT id (INVOICE_SELLER_*), as configured at issue;
--   * each line's unit (the catalog metric's unit), for quantities printed in it.
-- The content hash covers them: the canonical text gains each of them only when it is set, so
-- the hash of every document issued before this migration stays what was stored.

alter table raw.catalog_tenants add column if not exists address text;
alter table raw.catalog_tenants add column if not exists vat_id text;

set role meterline_billing_owner;

alter table billing.invoices
    add column if not exists buyer_address text,
    add column if not exists buyer_vat_id text,
    add column if not exists country text,
    add column if not exists tax_rate numeric,
    add column if not exists service_start date,
    add column if not exists service_end date,
    add column if not exists due_date date,
    add column if not exists seller_name text,
    add column if not exists seller_address text,
    add column if not exists seller_vat_id text;
comment on column billing.invoices.service_end is 'End of the service period billed (exclusive), like period_end.';
comment on column billing.invoices.due_date is 'Issue date plus the payment terms in force at issue (INVOICE_PAYMENT_TERMS_DAYS).';
alter table billing.invoice_line_items add column if not exists unit text;
alter table billing.credit_notes
    add column if not exists buyer_address text,
    add column if not exists buyer_vat_id text,
    add column if not exists country text,
    add column if not exists tax_rate numeric,
    add column if not exists seller_name text,
    add column if not exists seller_address text,
    add column if not exists seller_vat_id text;

create or replace function billing.invoice_canonical(p_invoice_id uuid) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select (jsonb_build_object(
        'format', 'meterline.invoice.v1',
        'invoice_id', i.invoice_id,
        'invoice_number', i.invoice_number,
        'tenant_id', i.tenant_id,
        'tenant_name', i.tenant_name,
        'billing_email', i.billing_email,
        'subscription_id', i.subscription_id,
        'period_start', to_char(i.period_start, 'YYYY-MM-DD'),
        'period_end', to_char(i.period_end, 'YYYY-MM-DD'),
        'currency', i.currency,
        'subtotal', i.subtotal,
        'credits', i.credits,
        'tax', i.tax,
        'total', i.total,
        'issued_at', to_char(i.issued_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'replaces_invoice_id', i.replaces_invoice_id,
        'lines', coalesce((
            select jsonb_agg(
                jsonb_build_object(
                    'line_no', l.line_no,
                    'kind', l.kind,
                    'metric_code', l.metric_code,
                    'description', l.description,
                    'quantity', l.quantity,
                    'unit_price', l.unit_price,
                    'amount', l.amount
                ) || jsonb_strip_nulls(jsonb_build_object('unit', l.unit)) order by l.line_no
            )
            from billing.invoice_line_items l
            where l.invoice_id = i.invoice_id
        ), '[]'::jsonb)
    ) || jsonb_strip_nulls(jsonb_build_object(
        'buyer_address', i.buyer_address,
        'buyer_vat_id', i.buyer_vat_id,
        'country', i.country,
        'tax_rate', i.tax_rate,
        'service_start', to_char(i.service_start, 'YYYY-MM-DD'),
        'service_end', to_char(i.service_end, 'YYYY-MM-DD'),
        'due_date', to_char(i.due_date, 'YYYY-MM-DD'),
        'seller_name', i.seller_name,
        'seller_address', i.seller_address,
        'seller_vat_id', i.seller_vat_id
    )))::text
    from billing.invoices i
    where i.invoice_id = p_invoice_id
$$;

create or replace function billing.credit_note_canonical(p_credit_note_id uuid) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select (jsonb_build_object(
        'format', 'meterline.credit_note.v1',
        'credit_note_id', n.credit_note_id,
        'credit_note_number', n.credit_note_number,
        'invoice_id', n.invoice_id,
        'tenant_id', n.tenant_id,
        'tenant_name', n.tenant_name,
        'billing_email', n.billing_email,
        'currency', n.currency,
        'subtotal', n.subtotal,
        'tax', n.tax,
        'total', n.total,
        'reason', n.reason,
        'issued_at', to_char(n.issued_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'lines', coalesce((
            select jsonb_agg(
                jsonb_build_object('line_no', l.line_no, 'description', l.description, 'amount', l.amount)
                order by l.line_no
            )
            from billing.credit_note_lines l
            where l.credit_note_id = n.credit_note_id
        ), '[]'::jsonb)
    ) || jsonb_strip_nulls(jsonb_build_object(
        'buyer_address', n.buyer_address,
        'buyer_vat_id', n.buyer_vat_id,
        'country', n.country,
        'tax_rate', n.tax_rate,
        'seller_name', n.seller_name,
        'seller_address', n.seller_address,
        'seller_vat_id', n.seller_vat_id
    )))::text
    from billing.credit_notes n
    where n.credit_note_id = p_credit_note_id
$$;

reset role;
