-- The billing catalog as finance exports it (docs/catalog.md). Each table holds the latest
-- complete export of its file; dbt snapshots keep the history.
create table if not exists raw.catalog_tenants (
    tenant_id     text primary key,
    name          text not null,
    country       text not null,
    currency      text not null,
    billing_email text,
    source_file   text not null,
    loaded_at     timestamptz not null default now()
);
create table if not exists raw.catalog_plans (
    plan_id            text primary key,
    name               text not null,
    currency           text not null,
    monthly_base_fee   numeric not null,
    minimum_commitment numeric not null default 0,
    source_file        text not null,
    loaded_at          timestamptz not null default now()
);
create table if not exists raw.catalog_subscriptions (
    subscription_id uuid not null,
    tenant_id       text not null,
    plan_id         text not null,
    started_at      timestamptz not null,
    ended_at        timestamptz,
    source_file     text not null,
    loaded_at       timestamptz not null default now(),
    primary key (subscription_id, started_at)
);
create table if not exists raw.catalog_metrics (
    metric_code text primary key,
    event_type  text not null,
    aggregation text not null,
    property    text,
    unit        text not null,
    source_file text not null,
    loaded_at   timestamptz not null default now()
);
create table if not exists raw.catalog_price_components (
    plan_id        text not null,
    metric_code    text not null,
    model          text not null,
    included_units numeric not null default 0,
    unit_price     numeric,
    package_size   numeric,
    source_file    text not null,
    loaded_at      timestamptz not null default now(),
    primary key (plan_id, metric_code)
);
create table if not exists raw.catalog_price_tiers (
    plan_id     text not null,
    metric_code text not null,
    tier        int not null,
    up_to       numeric,
    unit_price  numeric not null,
    flat_fee    numeric not null default 0,
    source_file text not null,
    loaded_at   timestamptz not null default now(),
    primary key (plan_id, metric_code, tier)
);
create table if not exists raw.catalog_quotas (
    subscription_id    uuid not null,
    event_type         text not null,
    limit_value        numeric not null,
    period             text not null,
    action             text not null,
    overage_unit_price numeric,
    source_file        text not null,
    loaded_at          timestamptz not null default now(),
    primary key (subscription_id, event_type)
);
create table if not exists raw.catalog_tax_rates (
    country     text not null,
    rate        numeric not null,
    valid_from  date not null,
    valid_to    date,
    source_file text not null,
    loaded_at   timestamptz not null default now(),
    primary key (country, valid_from)
);
create table if not exists raw.catalog_credits (
    credit_id   text primary key,
    tenant_id   text not null,
    amount      numeric not null,
    currency    text not null,
    reason      text not null,
    created_by  text not null,
    created_at  timestamptz not null,
    source_file text not null,
    loaded_at   timestamptz not null default now()
);
create table if not exists raw.catalog_allocation_rules (
    rule_version  int not null,
    service       text not null,
    method        text not null,
    driver_metric text,
    valid_from    date not null,
    valid_to      date,
    source_file   text not null,
    loaded_at     timestamptz not null default now(),
    primary key (rule_version, service)
);
create table if not exists raw.catalog_aws_invoice_totals (
    billing_period text primary key,
    invoice_id     text,
    total          numeric not null,
    currency       text not null,
    source_file    text not null,
    loaded_at      timestamptz not null default now()
);
