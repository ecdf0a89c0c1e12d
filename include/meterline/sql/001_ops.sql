-- The operations ledger every correction and pipeline action writes to.
create table if not exists ops.audit_log (
    audit_id    bigint generated always as identity primary key,
    actor       text        not null,
    action      text        not null,
    resource    text        not null,
    metadata    jsonb       not null default '{}'::jsonb,
    "timestamp" timestamptz not null default now()
);
create index if not exists audit_log_resource_idx on ops.audit_log (resource, "timestamp");
