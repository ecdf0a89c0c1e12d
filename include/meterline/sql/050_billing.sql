-- Issued documents and gate decisions: the contract between the emitter/gate (writers) and
-- dbt's invoice_header (reader: it shows each draft's current state from these).

-- One issued invoice document. Written only by the emitter; never changes after issue except
-- its status (void / paid / disputed) and that status's timestamp.
create table if not exists billing.invoices (
    invoice_id      uuid primary key,
    invoice_number  text not null unique,          -- INV-YYYY-NNNNNN, gap-free per year
    draft_id        text not null,                 -- marts.invoice_header.invoice_id it was issued from
    tenant_id       text not null,
    subscription_id uuid not null,
    period_start    date not null,
    period_end      date not null,                 -- exclusive: the first day of the next month
    currency        text not null,
    subtotal        numeric not null,
    credits         numeric not null,
    tax             numeric not null,
    total           numeric not null,
    status          text not null check (status in ('issued', 'paid', 'void', 'disputed')),
    created_at      timestamptz not null default now(),
    issued_at       timestamptz not null,
    voided_at       timestamptz,
    void_reason     text,
    voided_by       text,
    updated_at      timestamptz not null default now(),
    content_hash    text not null,
    replaces_invoice_id uuid references billing.invoices (invoice_id)
);
-- At most one live (not void) invoice per subscription and period.
create unique index if not exists invoices_one_live_per_subscription_period
    on billing.invoices (subscription_id, period_start) where status <> 'void';

-- Every gate decision: one row per check evaluated in one gate run. Period-wide checks have no
-- invoice_id; invoice-level checks name the draft (marts.invoice_header.invoice_id) they block.
create table if not exists ops.invoice_gate (
    gate_row_id   bigint generated always as identity primary key,
    run_id        text not null,                   -- one gate evaluation
    period_start  date not null,
    check_name    text not null,
    scope         text not null check (scope in ('period', 'invoice')),
    invoice_id    text,
    passed        boolean not null,
    overridden    boolean not null default false,  -- failed, but an operator overrode it (audited)
    reason        text,
    decided_at    timestamptz not null default now()
);
create index if not exists invoice_gate_period_idx on ops.invoice_gate (period_start, decided_at);
