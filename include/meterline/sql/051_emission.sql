-- What the emitter and the corrections write next to billing.invoices (050): lines, credit
-- notes, manual credits, the gap-free number counters, data-quality results, and the rule that
-- an issued document never changes (enforced here, whoever connects).

-- The lines of one issued invoice, copied from marts.invoice_draft_lines at issue.
create table if not exists billing.invoice_line_items (
    invoice_id  uuid    not null references billing.invoices (invoice_id),
    line_no     int     not null,
    kind        text    not null,
    metric_code text,
    description text    not null,
    quantity    numeric,
    unit_price  numeric,
    amount      numeric not null,
    primary key (invoice_id, line_no)
);

-- Gap-free numbers: one counter row per document series and year, incremented in the same
-- transaction as the document it numbers (a rolled-back issue gives its number back).
create table if not exists billing.document_counters (
    series      text not null check (series in ('INV', 'CN')),
    year        int  not null,
    last_number int  not null,
    primary key (series, year)
);

-- A credit note: a negative document referencing an issued invoice (partial or full).
create table if not exists billing.credit_notes (
    credit_note_id     uuid primary key,
    credit_note_number text not null unique,       -- CN-YYYY-NNNNNN, gap-free per year
    invoice_id         uuid not null references billing.invoices (invoice_id),
    tenant_id          text not null,
    currency           text not null,
    subtotal           numeric not null check (subtotal <= 0),
    tax                numeric not null check (tax <= 0),
    total              numeric not null check (total < 0),
    reason             text not null,
    created_by         text not null,
    issued_at          timestamptz not null,
    content_hash       text not null
);
create index if not exists credit_notes_invoice_idx on billing.credit_notes (invoice_id);

create table if not exists billing.credit_note_lines (
    credit_note_id uuid    not null references billing.credit_notes (credit_note_id),
    line_no        int     not null,
    description    text    not null,
    amount         numeric not null,
    primary key (credit_note_id, line_no)
);

-- Manual credits granted by an operator, applied by the emitter to the tenant's next invoices
-- in the same currency until used up.
create table if not exists billing.credit_grants (
    grant_id   uuid primary key,
    tenant_id  text not null,
    amount     numeric not null check (amount > 0),
    currency   text not null,
    reason     text not null,
    created_by text not null,
    created_at timestamptz not null default now()
);
create index if not exists credit_grants_tenant_idx on billing.credit_grants (tenant_id, currency);

create table if not exists billing.credit_applications (
    grant_id   uuid    not null references billing.credit_grants (grant_id),
    invoice_id uuid    not null references billing.invoices (invoice_id),
    amount     numeric not null check (amount > 0),
    applied_at timestamptz not null default now(),
    primary key (grant_id, invoice_id)
);

-- What each tenant still has to use, per currency.
create or replace view billing.credit_balances as
select
    g.tenant_id,
    g.currency,
    sum(g.amount) as granted,
    coalesce(sum(a.applied), 0) as applied,
    sum(g.amount) - coalesce(sum(a.applied), 0) as remaining
from billing.credit_grants g
left join (
    select grant_id, sum(amount) as applied from billing.credit_applications group by grant_id
) a using (grant_id)
group by g.tenant_id, g.currency;

-- What is still owed on each issued invoice once its credit notes are deducted.
create or replace view billing.invoice_balances as
select
    i.invoice_id,
    i.invoice_number,
    i.tenant_id,
    i.currency,
    i.status,
    i.total,
    coalesce(cn.credited, 0) as credited,
    case when i.status = 'void' then 0 else i.total + coalesce(cn.credited, 0) end as balance_due
from billing.invoices i
left join (
    select invoice_id, sum(total) as credited from billing.credit_notes group by invoice_id
) cn using (invoice_id);

-- Issued documents are immutable: an invoice may change only its status (and the columns that
-- describe that change); lines, credit notes and grants never change and are never deleted.
create or replace function billing.refuse_change() returns trigger
language plpgsql as $$
begin
    raise exception '% on %.% refused: issued billing documents are immutable (void and regenerate, or issue a credit note)',
        tg_op, tg_table_schema, tg_table_name
        using errcode = 'integrity_constraint_violation';
end;
$$;

-- The guard compares every column but the status ones, so a column added later is frozen too.
create or replace function billing.guard_invoice_update() returns trigger
language plpgsql as $$
declare
    status_columns constant text[] := array['status', 'voided_at', 'void_reason', 'voided_by', 'updated_at'];
begin
    if (to_jsonb(new) - status_columns) is distinct from (to_jsonb(old) - status_columns) then
        raise exception 'invoice % is issued: only its status may change (void and regenerate, or issue a credit note)',
            old.invoice_number
            using errcode = 'integrity_constraint_violation';
    end if;
    if old.status = 'void' then
        raise exception 'invoice % is void: a void invoice never changes again', old.invoice_number
            using errcode = 'integrity_constraint_violation';
    end if;
    if new.status = 'void' and (new.voided_at is null or new.void_reason is null or new.voided_by is null) then
        raise exception 'voiding invoice % needs voided_at, void_reason and voided_by', old.invoice_number
            using errcode = 'integrity_constraint_violation';
    end if;
    if new.status <> 'void' and (new.voided_at, new.void_reason, new.voided_by)
       is distinct from (old.voided_at, old.void_reason, old.voided_by) then
        raise exception 'invoice %: void columns change only when it is voided', old.invoice_number
            using errcode = 'integrity_constraint_violation';
    end if;
    new.updated_at := now();
    return new;
end;
$$;

drop trigger if exists invoices_guard_update on billing.invoices;
create trigger invoices_guard_update before update on billing.invoices
    for each row execute function billing.guard_invoice_update();
drop trigger if exists invoices_refuse_delete on billing.invoices;
create trigger invoices_refuse_delete before delete on billing.invoices
    for each row execute function billing.refuse_change();

drop trigger if exists invoice_line_items_immutable on billing.invoice_line_items;
create trigger invoice_line_items_immutable before update or delete on billing.invoice_line_items
    for each row execute function billing.refuse_change();
drop trigger if exists credit_notes_immutable on billing.credit_notes;
create trigger credit_notes_immutable before update or delete on billing.credit_notes
    for each row execute function billing.refuse_change();
drop trigger if exists credit_note_lines_immutable on billing.credit_note_lines;
create trigger credit_note_lines_immutable before update or delete on billing.credit_note_lines
    for each row execute function billing.refuse_change();
drop trigger if exists credit_grants_immutable on billing.credit_grants;
create trigger credit_grants_immutable before update or delete on billing.credit_grants
    for each row execute function billing.refuse_change();
drop trigger if exists credit_applications_immutable on billing.credit_applications;
create trigger credit_applications_immutable before update or delete on billing.credit_applications
    for each row execute function billing.refuse_change();
-- TRUNCATE skips row triggers: refuse it too.
drop trigger if exists invoices_refuse_truncate on billing.invoices;
create trigger invoices_refuse_truncate before truncate on billing.invoices
    for each statement execute function billing.refuse_change();
drop trigger if exists invoice_line_items_refuse_truncate on billing.invoice_line_items;
create trigger invoice_line_items_refuse_truncate before truncate on billing.invoice_line_items
    for each statement execute function billing.refuse_change();

-- One row per expectation evaluated by one data-quality run (great-expectations suites and the
-- dbt tests on the billing models). The gate reads the latest run of each suite for a period.
create table if not exists ops.dq_results (
    dq_result_id     bigint generated always as identity primary key,
    dq_run_id        text        not null,
    period_start     date        not null,
    suite            text        not null,
    expectation      text        not null,
    scope            text        not null check (scope in ('period', 'invoice')),
    success          boolean     not null,
    observed_value   jsonb,
    unexpected_count bigint,
    failing_keys     text[]      not null default '{}',   -- invoice-scope: the draft ids that fail
    detail           jsonb       not null default '{}'::jsonb,
    run_at           timestamptz not null default now()
);
create index if not exists dq_results_period_idx on ops.dq_results (period_start, suite, run_at);
