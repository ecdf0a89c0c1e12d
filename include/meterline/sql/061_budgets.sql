-- Budgets (per tenant, or per service for internal cost) and the alerts sent when one crosses
-- a threshold. Budgets are loaded by meterline.budgets.load; alerts written by meterline.budgets.alerts.

-- One monthly budget: amount per calendar month, in its currency, with its alert thresholds (%).
create table if not exists raw.budgets (
    budget_id   text primary key,
    scope_type  text      not null check (scope_type in ('tenant', 'service')),
    scope_id    text      not null,   -- tenant_id, or the CUR product code (AmazonEC2)
    amount      numeric   not null check (amount > 0),
    currency    text      not null,
    thresholds  numeric[] not null check (cardinality(thresholds) > 0),
    source_file text      not null,
    line_no     int       not null,
    loaded_at   timestamptz not null default now()
);

-- One alert per budget, period and threshold, ever: the key is what makes a re-run send nothing.
create table if not exists ops.budget_alerts (
    budget_id       text        not null,
    period_start    date        not null,
    threshold       numeric     not null,
    pct_used        numeric     not null,
    actual          numeric     not null,
    amount          numeric     not null,
    currency        text        not null,
    response_status int         not null,
    sent_at         timestamptz not null default now(),
    primary key (budget_id, period_start, threshold)
);
