-- Budgets move into the billing catalog export (docs/catalog.md, budgets.csv): loaded with the
-- rest of the catalog by meterline.catalog.load into raw.catalog_budgets. The old standalone
-- raw.budgets (LANDING_URL/budgets/budgets.csv) is gone; its staging view goes with it (dbt
-- builds stg_catalog__budgets instead).
create table if not exists raw.catalog_budgets (
    budget_id   text primary key,
    scope_type  text      not null check (scope_type in ('tenant', 'service')),
    scope_id    text      not null,   -- tenant_id, or the CUR product code (AmazonEC2)
    period      text      not null check (period = 'month'),
    amount      numeric   not null check (amount > 0),
    currency    text      not null,
    thresholds  numeric[] not null check (cardinality(thresholds) > 0),  -- percent of amount, ascending
    source_file text      not null,
    loaded_at   timestamptz not null default now()
);

drop table if exists raw.budgets cascade;
