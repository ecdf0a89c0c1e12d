-- What a gate run passed: the inputs it read (watermarks of the period's feeds, the catalog and
-- the manual credits) and, per draft, the fingerprint of the draft (invoice_drafts.content_hash).
-- The emitter issues a draft only while both are unchanged, so a gate decision never covers
-- data that arrived after it.
create table if not exists ops.invoice_gate_inputs (
    run_id       text primary key,
    period_start date        not null,
    watermarks   jsonb       not null,
    decided_at   timestamptz not null
);

create table if not exists ops.invoice_gate_drafts (
    run_id       text not null references ops.invoice_gate_inputs (run_id),
    invoice_id   text not null,
    content_hash text not null,
    primary key (run_id, invoice_id)
);
