-- Immutability that holds against the pipeline: the `billing` schema, its tables, views,
-- sequences, triggers and functions belong to meterline_billing_owner, a NOLOGIN role nobody
-- runs as. meterline_pipeline (every DAG, loader and dbt run) keeps what the emitter, the
-- corrections and the payment loader need and nothing more:
--   * SELECT on every billing table and view;
--   * INSERT of new invoices and their lines, credit notes and their lines, credit grants and
--     their applications, payments and payment mismatches;
--   * every other change through the SECURITY DEFINER functions below (owned by the owner role,
--     search_path pinned), which validate the change and write ops.audit_log in the same
--     transaction: a status change of an invoice, a payment mismatch resolved, the next document
--     number, sealing a new document with its content hash, locking invoices for a decision.
-- So as meterline_pipeline UPDATE, DELETE and TRUNCATE of billing rows are refused by privilege,
-- and ALTER TABLE (DISABLE TRIGGER, NO FORCE ROW LEVEL SECURITY, ADD COLUMN), DROP TRIGGER,
-- DROP TABLE and CREATE OR REPLACE FUNCTION are refused because it owns neither the objects nor
-- the schema. The triggers of 051 stay: they also bind the owner and the functions.
--
-- This file runs as the bootstrap login (superuser, or the WAREHOUSE_URL login with CREATEROLE:
-- warehouse._ensure_roles makes it a member of both roles), not as meterline_pipeline: handing an
-- object to another role needs membership of the new owner, which the pipeline must never have.
-- A later migration that changes billing starts with `set role meterline_billing_owner`.

reset role;

-- 1. Hand everything in billing to the owner role: the schema first (a schema's owner may drop
--    anything in it, and a new owner of a table needs CREATE on its schema), then every table,
--    view and free-standing sequence (identity and serial sequences follow their table), and every
--    function (a function's owner can replace its body, a view's owner what analysts read).
alter schema billing owner to meterline_billing_owner;
do $$
declare
    r record;
begin
    for r in
        select c.oid::regclass as rel,
               case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                              when 'S' then 'sequence' when 'f' then 'foreign table' else 'table' end as kind
        from pg_class c
        where c.relnamespace = 'billing'::regnamespace
          and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
          and not exists (
              select 1 from pg_depend d
              where c.relkind = 'S' and d.classid = 'pg_class'::regclass and d.objid = c.oid
                and d.deptype in ('a', 'i')
          )
    loop
        execute format('alter %s %s owner to meterline_billing_owner', r.kind, r.rel);
    end loop;
    for r in
        select p.oid::regprocedure as fn, case p.prokind when 'p' then 'procedure' else 'function' end as kind
        from pg_proc p
        where p.pronamespace = 'billing'::regnamespace
    loop
        execute format('alter %s %s owner to meterline_billing_owner', r.kind, r.fn);
    end loop;
end;
$$;

-- The audit functions below write the operations ledger (owned by the pipeline, as all of ops).
grant usage on schema ops to meterline_billing_owner;
grant insert on ops.audit_log to meterline_billing_owner;

-- 2. From here on, as the owner: what it creates is its own.
set role meterline_billing_owner;

-- Row-level security is forced on four billing tables (080): the owner, and so every function
-- below, would see no row without a policy of its own.
create policy meterline_billing_owner_all on billing.invoices
    to meterline_billing_owner using (true) with check (true);
create policy meterline_billing_owner_all on billing.invoice_line_items
    to meterline_billing_owner using (true) with check (true);
create policy meterline_billing_owner_all on billing.credit_notes
    to meterline_billing_owner using (true) with check (true);
create policy meterline_billing_owner_all on billing.payment_txn
    to meterline_billing_owner using (true) with check (true);

-- The transaction that issued a document (pg_current_xact_id at insert, set by the insert
-- trigger whatever the writer gives), and when it started (created_at = now()). Lines,
-- credit applications and the content hash are written only by that transaction. The row's
-- xmin would not do: a status change rewrites it (a transaction that voids or disputes an
-- invoice would then pass as its issuer), and a row inserted under a savepoint carries the
-- subtransaction's id. created_at guards the one case the id alone does not: a dump restored
-- into another cluster, whose new transaction ids could one day equal an old one.
-- NULL on documents issued before this migration: nothing can be added to them.
alter table billing.invoices add column if not exists issued_xact xid8;
alter table billing.credit_notes add column if not exists issued_xact xid8;
comment on column billing.invoices.issued_xact is
    'The transaction that issued the invoice: only it may write the lines and the content hash.';
comment on column billing.credit_notes.issued_xact is
    'The transaction that issued the credit note: only it may write the lines and the content hash.';
-- The hash is written after the lines, in the issuing transaction (billing.seal_invoice); a
-- deferred constraint trigger refuses the commit of a document without it or with a stale one.
alter table billing.invoices alter column content_hash drop not null;
alter table billing.credit_notes alter column content_hash drop not null;

-- 3. The content hash, defined once: sha256 (hex) of a canonical text of the stored document
-- and its lines. The text is a jsonb object (keys in jsonb's fixed order, numbers as stored,
-- dates ISO, timestamps UTC to the microsecond), so neither the session's TimeZone nor its
-- DateStyle changes it. Every figure, party and line a tenant's document shows is in it; the
-- status columns, which change after issue, are not. The emitter, the corrections, the rendered
-- documents, the gate's check and the dbt test all read these functions.
create or replace function billing.invoice_canonical(p_invoice_id uuid) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select jsonb_build_object(
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
                ) order by l.line_no
            )
            from billing.invoice_line_items l
            where l.invoice_id = i.invoice_id
        ), '[]'::jsonb)
    )::text
    from billing.invoices i
    where i.invoice_id = p_invoice_id
$$;

create or replace function billing.invoice_content_hash(p_invoice_id uuid) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select encode(sha256(convert_to(billing.invoice_canonical(p_invoice_id), 'UTF8')), 'hex')
$$;

create or replace function billing.credit_note_canonical(p_credit_note_id uuid) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select jsonb_build_object(
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
    )::text
    from billing.credit_notes n
    where n.credit_note_id = p_credit_note_id
$$;

create or replace function billing.credit_note_content_hash(p_credit_note_id uuid) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select encode(sha256(convert_to(billing.credit_note_canonical(p_credit_note_id), 'UTF8')), 'hex')
$$;

-- 4. Triggers.

-- A new document is issued, nothing else: status `issued`, no void columns (an invoice is voided
-- by billing.void_invoice, never inserted void), and stamped with the issuing transaction.
create or replace function billing.stamp_issue() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_table_name = 'invoices' then
        if new.status <> 'issued' or (new.voided_at, new.void_reason, new.voided_by) is distinct from (null, null, null) then
            raise exception 'invoice % is new: it is inserted as issued, without void columns (statuses change through billing.void_invoice, billing.dispute_invoice, billing.resolve_invoice_dispute, billing.mark_invoice_paid)',
                new.invoice_number
                using errcode = 'integrity_constraint_violation';
        end if;
        new.updated_at := now();
    end if;
    new.issued_xact := pg_current_xact_id();
    new.created_at := now();
    return new;
end;
$$;

-- credit_notes had no created_at: the issuing transaction's start, like invoices.created_at.
alter table billing.credit_notes add column if not exists created_at timestamptz;
comment on column billing.credit_notes.created_at is
    'When the transaction that issued the credit note started (empty before migration 090).';

drop trigger if exists invoices_stamp_issue on billing.invoices;
create trigger invoices_stamp_issue before insert on billing.invoices
    for each row execute function billing.stamp_issue();
drop trigger if exists credit_notes_stamp_issue on billing.credit_notes;
create trigger credit_notes_stamp_issue before insert on billing.credit_notes
    for each row execute function billing.stamp_issue();

-- A line (or a manual credit's application) belongs to its document from the transaction that
-- issued it; never afterwards, whoever asks.
create or replace function billing.refuse_late_rows() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    issued_in xid8;
    started timestamptz;
    number text;
begin
    if tg_table_name = 'credit_note_lines' then
        select n.issued_xact, n.created_at, n.credit_note_number into issued_in, started, number
        from billing.credit_notes n where n.credit_note_id = new.credit_note_id;
    else
        select i.issued_xact, i.created_at, i.invoice_number into issued_in, started, number
        from billing.invoices i where i.invoice_id = new.invoice_id;
    end if;
    if number is null then
        return new;  -- no such document: the foreign key refuses the row with its own message
    end if;
    if issued_in is distinct from pg_current_xact_id() or started is distinct from now() then
        raise exception '% into %.% refused: % is issued, and a document''s rows are written only by the transaction that issues it (void and regenerate, or issue a credit note)',
            tg_op, tg_table_schema, tg_table_name, number
            using errcode = 'integrity_constraint_violation';
    end if;
    return new;
end;
$$;

drop trigger if exists invoice_line_items_only_at_issue on billing.invoice_line_items;
create trigger invoice_line_items_only_at_issue before insert on billing.invoice_line_items
    for each row execute function billing.refuse_late_rows();
drop trigger if exists credit_applications_only_at_issue on billing.credit_applications;
create trigger credit_applications_only_at_issue before insert on billing.credit_applications
    for each row execute function billing.refuse_late_rows();
drop trigger if exists credit_note_lines_only_at_issue on billing.credit_note_lines;
create trigger credit_note_lines_only_at_issue before insert on billing.credit_note_lines
    for each row execute function billing.refuse_late_rows();

-- At commit: a document issued in this transaction carries the hash of what is stored. Catches
-- a document never sealed and a line written after it was sealed.
create or replace function billing.verify_sealed() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    stored text;
    computed text;
    number text;
    seal text;
begin
    if tg_table_name = 'credit_notes' then
        select n.content_hash, n.credit_note_number into stored, number
        from billing.credit_notes n where n.credit_note_id = new.credit_note_id;
        computed := billing.credit_note_content_hash(new.credit_note_id);
        seal := 'billing.seal_credit_note(credit_note_id)';
    else
        select i.content_hash, i.invoice_number into stored, number
        from billing.invoices i where i.invoice_id = new.invoice_id;
        computed := billing.invoice_content_hash(new.invoice_id);
        seal := 'billing.seal_invoice(invoice_id)';
    end if;
    if number is null then
        return null;  -- deleted in the same transaction: nothing was issued
    end if;
    if stored is null then
        raise exception '% cannot be committed without its content hash: call % after writing its lines', number, seal
            using errcode = 'integrity_constraint_violation';
    end if;
    if stored <> computed then
        raise exception '% cannot be committed: its content hash % is not that of its stored rows (%); a row was written after it was sealed',
            number, stored, computed
            using errcode = 'integrity_constraint_violation';
    end if;
    return null;
end;
$$;

drop trigger if exists invoices_sealed_at_commit on billing.invoices;
create constraint trigger invoices_sealed_at_commit after insert on billing.invoices
    deferrable initially deferred
    for each row execute function billing.verify_sealed();
drop trigger if exists credit_notes_sealed_at_commit on billing.credit_notes;
create constraint trigger credit_notes_sealed_at_commit after insert on billing.credit_notes
    deferrable initially deferred
    for each row execute function billing.verify_sealed();

-- The update guard of 051, now also letting the issuing transaction write the content hash once
-- (billing.seal_invoice), and freezing the issuing stamp with every other column.
create or replace function billing.guard_invoice_update() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    status_columns text[] := array['status', 'voided_at', 'void_reason', 'voided_by', 'updated_at'];
begin
    if old.content_hash is null and new.content_hash is not null
       and old.issued_xact = pg_current_xact_id() and old.created_at = now() then
        status_columns := status_columns || 'content_hash'::text;
    end if;
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

-- Credit notes: immutable once issued except for the hash their issuing transaction writes.
create or replace function billing.guard_credit_note_update() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if old.content_hash is null and new.content_hash is not null
       and old.issued_xact = pg_current_xact_id() and old.created_at = now()
       and (to_jsonb(new) - 'content_hash') = (to_jsonb(old) - 'content_hash') then
        return new;
    end if;
    raise exception 'credit note % is issued: it never changes (issue another credit note)', old.credit_note_number
        using errcode = 'integrity_constraint_violation';
end;
$$;

drop trigger if exists credit_notes_immutable on billing.credit_notes;
create trigger credit_notes_immutable before delete on billing.credit_notes
    for each row execute function billing.refuse_change();
drop trigger if exists credit_notes_guard_update on billing.credit_notes;
create trigger credit_notes_guard_update before update on billing.credit_notes
    for each row execute function billing.guard_credit_note_update();
-- TRUNCATE skips row triggers (051 covered invoices and their lines): the rest of the documents.
drop trigger if exists credit_notes_refuse_truncate on billing.credit_notes;
create trigger credit_notes_refuse_truncate before truncate on billing.credit_notes
    for each statement execute function billing.refuse_change();
drop trigger if exists credit_note_lines_refuse_truncate on billing.credit_note_lines;
create trigger credit_note_lines_refuse_truncate before truncate on billing.credit_note_lines
    for each statement execute function billing.refuse_change();
drop trigger if exists credit_grants_refuse_truncate on billing.credit_grants;
create trigger credit_grants_refuse_truncate before truncate on billing.credit_grants
    for each statement execute function billing.refuse_change();
drop trigger if exists credit_applications_refuse_truncate on billing.credit_applications;
create trigger credit_applications_refuse_truncate before truncate on billing.credit_applications
    for each statement execute function billing.refuse_change();

-- 5. The pipeline's doors: SECURITY DEFINER, owned by the owner, search_path pinned, every
-- name qualified. Each validates what it is asked and writes the audit row in the caller's
-- transaction; the callers validate first too, to explain a refusal in the operator's terms.

-- The invoices named, locked for an update decision (SELECT ... FOR UPDATE needs UPDATE
-- privilege, which the pipeline does not have); in invoice_id order, so lockers never deadlock.
create or replace function billing.lock_invoices(p_invoice_numbers text[]) returns setof billing.invoices
language sql security definer
set search_path = pg_catalog, pg_temp
as $$
    select * from billing.invoices where invoice_number = any(p_invoice_numbers) order by invoice_id for update
$$;

-- The next gap-free number of a series and year. The counter row stays locked until the
-- caller's transaction ends: a rolled-back document gives its number back.
create or replace function billing.next_document_number(p_series text, p_year int) returns int
language sql security definer
set search_path = pg_catalog, pg_temp
as $$
    insert into billing.document_counters as c (series, year, last_number) values (p_series, p_year, 1)
    on conflict (series, year) do update set last_number = c.last_number + 1
    returning last_number
$$;

-- Write the content hash of a document its caller's transaction issued, after its lines; returns
-- it (the documents print it). Once: a second call in that transaction returns the same hash.
create or replace function billing.seal_invoice(p_invoice_id uuid) returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    inv record;
    computed text;
begin
    select i.invoice_number, i.content_hash, i.issued_xact, i.created_at into inv
    from billing.invoices i where i.invoice_id = p_invoice_id for update;
    if not found then
        raise exception 'no invoice %', p_invoice_id using errcode = 'no_data_found';
    end if;
    if inv.issued_xact is distinct from pg_current_xact_id() or inv.created_at is distinct from now() then
        raise exception 'invoice % is sealed: only the transaction that issues an invoice writes its content hash',
            inv.invoice_number
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    computed := billing.invoice_content_hash(p_invoice_id);
    if inv.content_hash = computed then
        return computed;
    end if;
    if inv.content_hash is not null then
        raise exception 'invoice % is sealed already, with another hash: a row was written after it was sealed',
            inv.invoice_number
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    update billing.invoices set content_hash = computed where invoice_id = p_invoice_id;
    return computed;
end;
$$;

create or replace function billing.seal_credit_note(p_credit_note_id uuid) returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    note record;
    computed text;
begin
    select n.credit_note_number, n.content_hash, n.issued_xact, n.created_at into note
    from billing.credit_notes n where n.credit_note_id = p_credit_note_id for update;
    if not found then
        raise exception 'no credit note %', p_credit_note_id using errcode = 'no_data_found';
    end if;
    if note.issued_xact is distinct from pg_current_xact_id() or note.created_at is distinct from now() then
        raise exception 'credit note % is sealed: only the transaction that issues it writes its content hash',
            note.credit_note_number
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    computed := billing.credit_note_content_hash(p_credit_note_id);
    if note.content_hash = computed then
        return computed;
    end if;
    if note.content_hash is not null then
        raise exception 'credit note % is sealed already, with another hash: a row was written after it was sealed',
            note.credit_note_number
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    update billing.credit_notes set content_hash = computed where credit_note_id = p_credit_note_id;
    return computed;
end;
$$;

-- One status change of one invoice, checked against the allowed transitions, and its audit row.
-- Not callable by the pipeline: the four functions after it are the doors.
create or replace function billing.change_invoice_status(
    p_invoice_id uuid, p_to text, p_actor text, p_reason text, p_action text, p_metadata jsonb
) returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    inv billing.invoices;
    allowed constant jsonb := '{"void": ["issued", "disputed"], "disputed": ["issued"],
                                "issued": ["disputed"], "paid": ["issued", "disputed"]}';
begin
    if coalesce(btrim(p_actor), '') = '' then
        raise exception 'a status change names its actor' using errcode = 'invalid_parameter_value';
    end if;
    if p_to <> 'paid' and coalesce(btrim(p_reason), '') = '' then
        raise exception 'a status change to % states its reason', p_to using errcode = 'invalid_parameter_value';
    end if;
    select * into inv from billing.invoices where invoice_id = p_invoice_id for update;
    if not found then
        raise exception 'no issued invoice %', p_invoice_id using errcode = 'no_data_found';
    end if;
    if not coalesce((allowed -> p_to) ? inv.status, false) then
        raise exception 'invoice % is %: it cannot become %', inv.invoice_number, inv.status, p_to
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    if p_to = 'void' then
        update billing.invoices
        set status = 'void', voided_at = now(), void_reason = p_reason, voided_by = p_actor
        where invoice_id = p_invoice_id;
    else
        update billing.invoices set status = p_to where invoice_id = p_invoice_id;
    end if;
    insert into ops.audit_log (actor, action, resource, metadata)
    values (
        p_actor, p_action, 'invoice:' || inv.invoice_number,
        coalesce(p_metadata, '{}'::jsonb)
        || jsonb_build_object('invoice_id', inv.invoice_id::text, 'previous_status', inv.status)
    );
    return inv.status;
end;
$$;

-- Void (from issued or disputed). Returns the previous status.
create or replace function billing.void_invoice(p_invoice_id uuid, p_reason text, p_actor text) returns text
language sql security definer
set search_path = pg_catalog, pg_temp
as $$
    select billing.change_invoice_status(
        p_invoice_id, 'void', p_actor, p_reason, 'invoice.voided',
        (select jsonb_build_object('reason', p_reason, 'total', i.total::text, 'currency', i.currency)
         from billing.invoices i where i.invoice_id = p_invoice_id)
    )
$$;

-- The tenant contests an issued invoice.
create or replace function billing.dispute_invoice(p_invoice_id uuid, p_reason text, p_actor text) returns text
language sql security definer
set search_path = pg_catalog, pg_temp
as $$
    select billing.change_invoice_status(
        p_invoice_id, 'disputed', p_actor, p_reason, 'invoice.disputed', jsonb_build_object('reason', p_reason)
    )
$$;

-- The dispute is settled with the invoice standing: issued again.
create or replace function billing.resolve_invoice_dispute(p_invoice_id uuid, p_reason text, p_actor text) returns text
language sql security definer
set search_path = pg_catalog, pg_temp
as $$
    select billing.change_invoice_status(
        p_invoice_id, 'issued', p_actor, p_reason, 'invoice.dispute_resolved', jsonb_build_object('reason', p_reason)
    )
$$;

-- Paid in full by the payments named, each a succeeded payment applied to this invoice in
-- billing.payment_txn. `p_detail` (what the loader matched: owed, paid, currency) goes into
-- the audit row with the payment ids.
create or replace function billing.mark_invoice_paid(
    p_invoice_id uuid, p_payment_ids text[], p_actor text, p_detail jsonb
) returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    unknown text[];
begin
    if coalesce(cardinality(p_payment_ids), 0) = 0 then
        raise exception 'invoice %: marked paid without a payment', p_invoice_id using errcode = 'invalid_parameter_value';
    end if;
    select array_agg(p.id order by p.id) into unknown
    from unnest(p_payment_ids) as p (id)
    where not exists (
        select 1 from billing.payment_txn t
        where t.payment_id = p.id and t.invoice_id = p_invoice_id and t.status = 'succeeded'
          and t.match_status = 'applied'
    );
    if unknown is not null then
        raise exception 'invoice %: % not a succeeded payment applied to it in billing.payment_txn',
            p_invoice_id, array_to_string(unknown, ', ')
            using errcode = 'invalid_parameter_value';
    end if;
    return billing.change_invoice_status(
        p_invoice_id, 'paid', p_actor, null, 'invoice.paid',
        coalesce(p_detail, '{}'::jsonb) || jsonb_build_object('payment_ids', to_jsonb(p_payment_ids))
    );
end;
$$;

-- A payment mismatch settled by a later payment or refund. False when it was settled already.
create or replace function billing.resolve_payment_mismatch(
    p_payment_id text, p_status text, p_resolved_by text, p_actor text
) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    m billing.payment_mismatches;
begin
    if coalesce(btrim(p_resolved_by), '') = '' or coalesce(btrim(p_actor), '') = '' then
        raise exception 'a mismatch is resolved by a payment, and by an actor' using errcode = 'invalid_parameter_value';
    end if;
    select * into m from billing.payment_mismatches where payment_id = p_payment_id and status = p_status for update;
    if not found then
        raise exception 'no payment mismatch (%, %)', p_payment_id, p_status using errcode = 'no_data_found';
    end if;
    if m.resolved_at is not null then
        return false;
    end if;
    update billing.payment_mismatches set resolved_at = now(), resolved_by = p_resolved_by
    where payment_id = p_payment_id and status = p_status;
    insert into ops.audit_log (actor, action, resource, metadata)
    values (
        p_actor, 'payment_mismatch.resolved', 'payment:' || p_payment_id,
        jsonb_build_object('status', p_status, 'reason', m.reason, 'invoice_number', m.invoice_number,
                           'amount', m.amount::text, 'currency', m.currency, 'resolved_by', p_resolved_by)
    );
    return true;
end;
$$;

-- The pre-existing documents carry a hash computed by the retired Python definition (sha256 of
-- their JSON). Re-hash them with the one definition above, once, and keep the old value in the
-- audit log: the documents already sent print it.
alter table billing.invoices disable trigger invoices_guard_update;
with rehashed as (
    update billing.invoices i
    set content_hash = billing.invoice_content_hash(i.invoice_id)
    from billing.invoices old
    where old.invoice_id = i.invoice_id and old.content_hash is distinct from billing.invoice_content_hash(i.invoice_id)
    returning i.invoice_number, old.content_hash as old_hash, i.content_hash as new_hash
)
insert into ops.audit_log (actor, action, resource, metadata)
select 'migration 090_billing_owner', 'invoice.content_hash_redefined', 'invoice:' || invoice_number,
       jsonb_build_object('previous_content_hash', old_hash, 'content_hash', new_hash)
from rehashed;
alter table billing.invoices enable trigger invoices_guard_update;
alter table billing.credit_notes disable trigger credit_notes_guard_update;
with rehashed as (
    update billing.credit_notes n
    set content_hash = billing.credit_note_content_hash(n.credit_note_id)
    from billing.credit_notes old
    where old.credit_note_id = n.credit_note_id
      and old.content_hash is distinct from billing.credit_note_content_hash(n.credit_note_id)
    returning n.credit_note_number, old.content_hash as old_hash, n.content_hash as new_hash
)
insert into ops.audit_log (actor, action, resource, metadata)
select 'migration 090_billing_owner', 'credit_note.content_hash_redefined', 'credit_note:' || credit_note_number,
       jsonb_build_object('previous_content_hash', old_hash, 'content_hash', new_hash)
from rehashed;
alter table billing.credit_notes enable trigger credit_notes_guard_update;

-- 6. Privileges. The pipeline had every right as the owner; now exactly these.
revoke all on schema billing from public;
grant usage on schema billing to meterline_pipeline, meterline_analyst, meterline_operator;
revoke all on all tables in schema billing from meterline_pipeline;
grant select on all tables in schema billing to meterline_pipeline;
grant insert on billing.invoices, billing.invoice_line_items, billing.credit_notes, billing.credit_note_lines,
    billing.credit_grants, billing.credit_applications, billing.payment_txn, billing.payment_mismatches
    to meterline_pipeline;

revoke all on all functions in schema billing from public;
grant execute on function
    billing.invoice_canonical(uuid), billing.invoice_content_hash(uuid),
    billing.credit_note_canonical(uuid), billing.credit_note_content_hash(uuid)
    to meterline_pipeline, meterline_analyst, meterline_operator;
grant execute on function
    billing.lock_invoices(text[]), billing.next_document_number(text, int),
    billing.seal_invoice(uuid), billing.seal_credit_note(uuid),
    billing.void_invoice(uuid, text, text), billing.dispute_invoice(uuid, text, text),
    billing.resolve_invoice_dispute(uuid, text, text), billing.mark_invoice_paid(uuid, text[], text, jsonb),
    billing.resolve_payment_mismatch(text, text, text, text)
    to meterline_pipeline;

-- What the owner creates later in billing (a migration as meterline_billing_owner) is readable
-- by the pipeline and the staff, and its functions are nobody's until granted.
alter default privileges for role meterline_billing_owner in schema billing
    grant select on tables to meterline_pipeline, meterline_analyst, meterline_operator;
alter default privileges for role meterline_billing_owner revoke execute on functions from public;
