-- Tenant-scoped access: the `tenant` schema's views show a tenant its own invoices, lines,
-- credit notes, payments and usage, and nothing of anyone else's, enforced by row-level security
-- on the tables underneath. (The analyst and operator roles are granted in warehouse._grant.)
--
-- Who is which tenant (tenant.tenant_of):
-- * a tenant's own login role (member of meterline_tenant) is mapped to its tenant in
--   ops.tenant_users; any `meterline.tenant_id` setting is ignored for it, so a tenant who can
--   type SQL cannot become another tenant by `set meterline.tenant_id = ...`;
-- * the customer portal logs in as meterline_tenant_app, authenticates its users itself and
--   names the tenant of each request with `set local meterline.tenant_id = '...'` (trusted code);
-- * anyone else (and the portal with no setting) is no tenant: no rows.
-- Roles are matched on current_user and the function answers only for a role the session may
-- act as, so SET ROLE to the shared group role gives no tenant at all.
--
-- Where the rules live, and why there: RLS sits on the tables (FORCE: the owning pipeline role
-- is subject to it too, so the policies below are the whole truth about who sees which rows; the
-- pipeline's own policy lets it see and write everything, so the emitter and dbt work as before;
-- only superusers and BYPASSRLS roles skip it). The views are owned by meterline_tenant_reader,
-- which is not the tables' owner, not a superuser and has no BYPASSRLS, so the tables' policies
-- for that role apply when a tenant reads a view (a view runs with its owner's rights; a view
-- owned by the pipeline would show every row). Tenants have no privilege on the tables
-- themselves. The billing tables are created by migrations and never dropped: their policies are
-- set here once. The usage marts are dropped and recreated by every dbt build (a table
-- materialisation swaps in a new table and drops the old one with its dependent views): dbt's
-- post-hook `tenant_access()` (dbt_project/macros/tenant_access.sql) calls tenant.protect and
-- tenant.expose below on the new table inside the same transaction, so a rebuilt mart is never
-- readable without its policies and the tenant view never goes missing.

create schema if not exists tenant;
comment on schema tenant is 'Tenant-facing views: a tenant sees only its own rows (row-level security).';
grant usage on schema tenant to meterline_tenant, meterline_tenant_reader;
-- ALTER VIEW ... OWNER TO needs CREATE for the new owner; nobody logs in as the reader.
grant create on schema tenant to meterline_tenant_reader;
revoke all on schema tenant from public;

-- Tenant login roles and their tenant. A row here is how a login becomes a tenant; the role is
-- created by an administrator (`create role ... login in role meterline_tenant`).
create table if not exists ops.tenant_users (
    role_name  text primary key,
    tenant_id  text not null,
    granted_at timestamptz not null default now()
);
comment on table ops.tenant_users is
    'Tenant login roles: a member of meterline_tenant listed here sees only this tenant''s rows.';

-- The tenant whose rows `who` (the policies pass current_user) may see, or null for none.
-- SECURITY DEFINER reads ops.tenant_users, which tenants cannot read; pg_has_role keeps a tenant
-- from asking about another role (session_user: the login, which SET ROLE does not change).
create or replace function tenant.tenant_of(who name) returns text
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select case
        when not pg_has_role(session_user, who, 'MEMBER') then null
        when who = 'meterline_tenant_app' then nullif(current_setting('meterline.tenant_id', true), '')
        else (select u.tenant_id from ops.tenant_users u where u.role_name = who)
    end
$$;

-- Every subscription of that tenant (the catalog's subscriptions: any plan period).
create or replace function tenant.subscriptions_of(who name) returns setof uuid
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select distinct s.subscription_id
    from raw.catalog_subscriptions s
    where s.tenant_id = tenant.tenant_of(who)
$$;

-- Every issued invoice of that tenant (for the tables that reference invoices).
create or replace function tenant.invoices_of(who name) returns setof uuid
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select i.invoice_id
    from billing.invoices i
    where i.tenant_id = tenant.tenant_of(who)
$$;

revoke all on function tenant.tenant_of(name), tenant.subscriptions_of(name), tenant.invoices_of(name) from public;
grant execute on function tenant.tenant_of(name), tenant.subscriptions_of(name), tenant.invoices_of(name)
    to meterline_tenant, meterline_tenant_reader;

-- Row-level security on one table: FORCE, every row for the pipeline (reads and writes), every
-- row read for analysts and operators, and `tenant_rows` (a predicate on the table's columns,
-- evaluated for the reader that owns the tenant views) for tenants. Any other role sees no rows.
-- Idempotent: dbt calls it after every rebuild (a new table), and again on incremental runs.
create or replace function tenant.protect(target regclass, tenant_rows text) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    execute format('alter table %s enable row level security', target);
    execute format('alter table %s force row level security', target);
    execute format('drop policy if exists meterline_pipeline_all on %s', target);
    execute format('create policy meterline_pipeline_all on %s to meterline_pipeline using (true) with check (true)', target);
    execute format('drop policy if exists meterline_staff_read on %s', target);
    execute format('create policy meterline_staff_read on %s for select to meterline_analyst, meterline_operator using (true)', target);
    execute format('drop policy if exists meterline_tenant_read on %s', target);
    execute format('create policy meterline_tenant_read on %s for select to meterline_tenant_reader using (%s)', target, tenant_rows);
    execute format('grant select on %s to meterline_tenant_reader', target);
end;
$$;

-- A tenant-facing view tenant.<name> of some columns of a protected table, owned by the reader
-- (so the table's tenant policy applies) and readable by tenants. Dropped and created again
-- (not replaced) so a column added or retyped upstream never makes the rebuild fail.
create or replace function tenant.expose(name text, source regclass, columns text[], description text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    execute format('drop view if exists tenant.%I', name);
    execute format(
        'create view tenant.%I with (security_barrier) as select %s from %s',
        name, (select string_agg(quote_ident(c), ', ' order by n) from unnest(columns) with ordinality as u (c, n)), source
    );
    execute format('alter view tenant.%I owner to meterline_tenant_reader', name);
    execute format('grant select on tenant.%I to meterline_tenant', name);
    execute format('comment on view tenant.%I is %L', name, description);
end;
$$;

revoke all on function tenant.protect(regclass, text), tenant.expose(text, regclass, text[], text) from public;

-- The billing tables: migrations own them, so their rules are set once, here.
select tenant.protect('billing.invoices', 'tenant_id = (select tenant.tenant_of(current_user))');
select tenant.protect('billing.invoice_line_items', 'invoice_id in (select tenant.invoices_of(current_user))');
select tenant.protect('billing.credit_notes', 'tenant_id = (select tenant.tenant_of(current_user))');
select tenant.protect('billing.payment_txn', 'invoice_id in (select tenant.invoices_of(current_user))');

select tenant.expose(
    'invoices', 'billing.invoices',
    array['invoice_id', 'invoice_number', 'tenant_id', 'subscription_id', 'period_start', 'period_end', 'currency',
          'subtotal', 'credits', 'tax', 'total', 'status', 'issued_at', 'voided_at', 'replaces_invoice_id',
          'content_hash'],
    'The tenant''s issued invoices (billing.invoices).'
);
select tenant.expose(
    'invoice_lines', 'billing.invoice_line_items',
    array['invoice_id', 'line_no', 'kind', 'metric_code', 'description', 'quantity', 'unit_price', 'amount'],
    'The lines of the tenant''s issued invoices (billing.invoice_line_items).'
);
select tenant.expose(
    'credit_notes', 'billing.credit_notes',
    array['credit_note_id', 'credit_note_number', 'invoice_id', 'tenant_id', 'currency', 'subtotal', 'tax', 'total',
          'reason', 'issued_at'],
    'Credit notes issued against the tenant''s invoices (billing.credit_notes).'
);
select tenant.expose(
    'payments', 'billing.payment_txn',
    array['payment_id', 'status', 'invoice_number', 'invoice_id', 'amount', 'currency', 'paid_at', 'match_status'],
    'Payments received for the tenant''s invoices (billing.payment_txn).'
);
