-- Payments from the processor's exports (LANDING_URL/payments/), matched to issued invoices.
-- Written only by meterline.payments.load, in one transaction per load.

-- Every export file read: a file already recorded (same path and sha256) is skipped; the same
-- bytes under another name (a duplicate delivery) are read, but each of its payments is known.
create table if not exists raw.payment_files (
    source_file    text        not null,
    checksum       text        not null,
    format         text        not null check (format in ('csv', 'json')),
    rows_read      int         not null,
    rows_loaded    int         not null,
    rows_duplicate int         not null,
    rows_rejected  int         not null,
    loaded_at      timestamptz not null default now(),
    primary key (source_file, checksum)
);

-- Rows of an export that could not be read as a payment: file, line and reason.
create table if not exists raw.payments_rejected (
    source_file text        not null,
    line_no     int         not null,
    reason      text        not null,
    raw         text        not null,
    loaded_at   timestamptz not null default now(),
    primary key (source_file, line_no)
);

-- One state of one payment as the processor reported it: a payment may fail and then succeed,
-- or succeed and later be refunded, so the key is the payment and its status. match_status
-- says what matching did with it: applied to its invoice, a mismatch (billing.payment_mismatches),
-- or nothing to apply (a failed attempt).
create table if not exists billing.payment_txn (
    payment_id     text        not null,
    status         text        not null check (status in ('succeeded', 'failed', 'refunded')),
    invoice_number text        not null,
    invoice_id     uuid        references billing.invoices (invoice_id),   -- null: unknown invoice
    amount         numeric     not null check (amount >= 0),
    currency       text        not null,
    amount_usd     numeric,                                                 -- the processor's USD settlement, when reported
    paid_at        timestamptz not null,
    match_status   text        not null check (match_status in ('applied', 'mismatch', 'not_applicable')),
    source_file    text        not null,
    line_no        int         not null,
    loaded_at      timestamptz not null default now(),
    primary key (payment_id, status)
);
create index if not exists payment_txn_invoice_idx on billing.payment_txn (invoice_id);

-- Every payment that did not simply pay (part of) its invoice: unknown invoice, currency or
-- amount different from what is owed, a payment to a void or already paid invoice, a refund.
-- A partial payment is a mismatch until a later payment completes the invoice (resolved_at).
create table if not exists billing.payment_mismatches (
    payment_id     text        not null,
    status         text        not null,
    reason         text        not null check (reason in (
        'unknown_invoice', 'currency', 'void_invoice', 'already_paid', 'overpaid', 'underpaid', 'refund')),
    invoice_number text        not null,
    invoice_id     uuid,
    period_start   date        not null,   -- the invoice's period; the payment's month when unknown
    currency       text        not null,
    amount         numeric     not null,   -- the difference at stake, in the payment's currency
    detail         text        not null,
    detected_at    timestamptz not null default now(),
    resolved_at    timestamptz,
    resolved_by    text,                   -- the payment_id that resolved it
    primary key (payment_id, status),
    foreign key (payment_id, status) references billing.payment_txn (payment_id, status)
);
create index if not exists payment_mismatches_invoice_idx on billing.payment_mismatches (invoice_id);
