-- Who an issued document was addressed to, as it was at issue: the catalog may change later,
-- and a document rendered again from the warehouse must read (and hash) exactly the same.
alter table billing.invoices add column if not exists tenant_name text;
alter table billing.invoices add column if not exists billing_email text;
alter table billing.credit_notes add column if not exists tenant_name text;
alter table billing.credit_notes add column if not exists billing_email text;

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
