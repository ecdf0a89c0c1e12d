-- Who an issued document was addressed to, as it was at issue: the catalog may change later,
-- and a document rendered again from the warehouse must read (and hash) exactly the same.
alter table billing.invoices add column if not exists tenant_name text;
alter table billing.invoices add column if not exists billing_email text;
alter table billing.credit_notes add column if not exists tenant_name text;
alter table billing.credit_notes add column if not exists billing_email text;
