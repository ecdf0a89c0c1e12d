"""A small, fully known billing month (2025-03) for the gate, emitter and correction tests.

The marts dbt builds (usage_hourly, fact_cost_*, recon_summary, invoice_header,
invoice_draft_lines) are created here with plain DDL, with DESIGN.md's columns, and filled with
a few rows whose figures the tests assert to the cent. The raw ledgers (events, CUR deliveries,
catalog) are the real tables from the migrations.

Three tenants, one subscription each:
- t-0001 US, USD: base 100.00 + llm_tokens 30.00 = 130.00, tax 10 % 13.00, total 143.00
- t-0002 DE, EUR: base 200.00 + api_requests 12.35 = 212.35, credit 10.00, tax 19 % of 202.35
  = 38.45, total 240.80
- t-0003 JP, JPY: base 5000 + compute_ms 1234 = 6234, tax 10 % 623, total 6857
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg

PERIOD = "2025-03"
SUB = {
    "t-0001": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "t-0002": uuid.UUID("00000000-0000-4000-8000-000000000002"),
    "t-0003": uuid.UUID("00000000-0000-4000-8000-000000000003"),
}
DRAFT = {tenant: f"D-202503-{sub}" for tenant, sub in SUB.items()}
TOTALS = {"t-0001": Decimal("143.00"), "t-0002": Decimal("240.80"), "t-0003": Decimal("6857")}

_DDL = """
create table marts.usage_hourly (
    subscription_id uuid, event_type text, hour timestamptz, event_count bigint, total_tokens numeric,
    updated_at timestamptz default now());
create table marts.fact_cost_raw (
    billing_period date, line_item_line_item_type text, line_item_product_code text,
    line_item_usage_start_date timestamptz, line_item_usage_end_date timestamptz, line_item_usage_account_id text,
    line_item_resource_id text, unblended_cost numeric, billed_cost numeric, amortized_cost numeric,
    resource_tags_user_tenant_id text, tags jsonb, billing_currency text default 'USD');
create table marts.fact_cost_allocated (
    billing_period date, usage_date date, tenant_id text, service text, allocated_cost numeric,
    allocation_method text, rule_version int, is_quarantined boolean, currency text default 'USD');
create table marts.recon_summary (
    recon_id text, period_start date, service text, raw_cost numeric, allocated_cost numeric, variance numeric,
    variance_pct numeric, status text, currency text default 'USD', status_reason text);
"""
_INVOICE_DDL = """
create table marts.invoice_header (
    invoice_id text, tenant_id text, subscription_id uuid, period_start date, period_end date, currency text,
    subtotal numeric, credits numeric, tax numeric, total numeric, status text, blocked_reason text);
create table marts.invoice_draft_lines (
    invoice_id text, line_no int, kind text, metric_code text, description text, quantity numeric,
    unit_price numeric, amount numeric);
"""


def build(db: psycopg.Connection) -> None:
    """Create and fill the month in the test's database (autocommit connection)."""
    db.execute(_DDL)
    db.execute(_INVOICE_DDL)
    tenants = [
        ("t-0001", "Acme Corp", "US", "USD"),
        ("t-0002", "Beta GmbH", "DE", "EUR"),
        ("t-0003", "Kappa KK", "JP", "JPY"),
    ]
    for tenant, name, country, currency in tenants:
        db.execute(
            "insert into raw.catalog_tenants (tenant_id, name, country, currency, billing_email, source_file)"
            " values (%s, %s, %s, %s, %s, 'tenants.csv')",
            [tenant, name, country, currency, f"billing@{tenant}.example"],
        )
        db.execute(
            "insert into raw.catalog_subscriptions (subscription_id, tenant_id, plan_id, started_at, source_file)"
            " values (%s, %s, %s, '2025-01-01T00:00:00Z', 'subscriptions.csv')",
            [SUB[tenant], tenant, f"plan-{currency.lower()}"],
        )
    for country, rate in (("US", "0.10"), ("DE", "0.19"), ("JP", "0.10")):
        db.execute(
            "insert into raw.catalog_tax_rates (country, rate, valid_from, source_file)"
            " values (%s, %s, '2024-01-01', 'tax_rates.csv')",
            [country, Decimal(rate)],
        )
    headers = [
        ("t-0001", "USD", "130.00", "0", "13.00", "143.00"),
        ("t-0002", "EUR", "212.35", "10.00", "38.45", "240.80"),
        ("t-0003", "JPY", "6234", "0", "623", "6857"),
    ]
    for tenant, currency, subtotal, credits, tax, total in headers:
        db.execute(
            "insert into marts.invoice_header values (%s, %s, %s, '2025-03-01', '2025-04-01', %s, %s, %s, %s, %s,"
            " 'open', null)",
            [DRAFT[tenant], tenant, SUB[tenant], currency, *(Decimal(x) for x in (subtotal, credits, tax, total))],
        )
    lines = [
        ("t-0001", 1, "base_fee", None, "Base fee (Starter)", "1", "100.00", "100.00"),
        ("t-0001", 2, "usage", "llm_tokens", "LLM tokens", "1500000", "0.00002", "30.00"),
        ("t-0002", 1, "base_fee", None, "Base fee (Team)", "1", "200.00", "200.00"),
        ("t-0002", 2, "usage", "api_requests", "API requests", "12345", "0.001", "12.35"),
        ("t-0002", 3, "credit", None, "Credit: onboarding", None, None, "-10.00"),
        ("t-0003", 1, "base_fee", None, "Base fee (Pro JP)", "1", "5000", "5000"),
        ("t-0003", 2, "usage", "compute_ms", "Compute time", "1234", "1", "1234"),
    ]
    for tenant, no, kind, metric, desc, qty, price, amount in lines:
        db.execute(
            "insert into marts.invoice_draft_lines values (%s, %s, %s, %s, %s, %s, %s, %s)",
            [DRAFT[tenant], no, kind, metric, desc, *(None if x is None else Decimal(x) for x in (qty, price, amount))],
        )
    # Usage: a few hours, events through the last day of March.
    for tenant, hour, count, tokens in [
        ("t-0001", "2025-03-01T10:00:00Z", 3, 1000),
        ("t-0001", "2025-03-31T22:00:00Z", 2, 500),
        ("t-0002", "2025-03-15T08:00:00Z", 5, 0),
        ("t-0003", "2025-03-20T12:00:00Z", 1, 0),
    ]:
        db.execute(
            "insert into marts.usage_hourly (subscription_id, event_type, hour, event_count, total_tokens)"
            " values (%s, 'llm.completion', %s, %s, %s)",
            [SUB[tenant], hour, count, tokens],
        )
    for n, (tenant, ts, day) in enumerate(
        [
            ("t-0001", "2025-03-01T10:05:00Z", "2025-03-01"),
            ("t-0002", "2025-03-15T08:30:00Z", "2025-03-15"),
            ("t-0003", "2025-03-20T12:10:00Z", "2025-03-20"),
            ("t-0001", "2025-03-31T22:15:00Z", "2025-03-31"),
        ]
    ):
        db.execute(
            'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties, "timestamp",'
            " source_file, line_no, partition_date) values (%s, %s, %s, 'llm.completion', '{\"tokens\": 10}', %s,"
            " %s, 1, %s)",
            [uuid.uuid4(), f"k-{n}", SUB[tenant], ts, f"events/day={day}/part-0.jsonl", day],
        )
    db.execute(
        "insert into raw.cur_deliveries (delivery_key, format, report_name, billing_period, status, unblended_cost)"
        " values ('cur/2025-03/assembly-1', 'cur2_parquet', 'meterline', '2025-03-01', 'loaded', 100.123456)"
    )
    db.execute(
        "insert into marts.fact_cost_raw (billing_period, line_item_product_code, unblended_cost, billed_cost)"
        " values ('2025-03-01', 'AmazonEC2', 70.2, 70.123456), ('2025-03-01', 'AmazonS3', 30, 30)"
    )
    db.execute(
        "insert into marts.fact_cost_allocated (billing_period, usage_date, tenant_id, service, allocated_cost,"
        " allocation_method, rule_version, is_quarantined) values"
        " ('2025-03-01', '2025-03-01', 't-0001', 'AmazonEC2', 40.06, 'tag', 1, false),"
        " ('2025-03-01', '2025-03-01', 't-0002', 'AmazonEC2', 30.06, 'usage_share', 1, false),"
        " ('2025-03-01', '2025-03-02', null, 'AmazonS3', 30.00, 'unallocated', 1, true)"
    )
    db.execute(
        "insert into marts.recon_summary values"
        " ('RECON-2025-03', '2025-03-01', 'AmazonEC2', 70.123456, 70.12, 0.003456, 0.0049, 'ok'),"
        " ('RECON-2025-03', '2025-03-01', 'AmazonS3', 30, 30, 0, 0, 'ok')"
    )


# Budgets of the month's tenants and of EC2, as budgets.csv would load them into raw.catalog_budgets.
BUDGETS = [
    ("b-acme", "tenant", "t-0001", "150.00", "USD", [80, 100]),
    ("b-beta", "tenant", "t-0002", "200.00", "EUR", [80, 100]),
    ("b-kappa", "tenant", "t-0003", "100.00", "USD", [80, 100]),
    ("b-ec2", "service", "AmazonEC2", "100.00", "USD", [50, 80, 100]),
]


def add_budgets(db: psycopg.Connection) -> None:
    """The month's budgets in raw.catalog_budgets (what `meterline load catalog` writes)."""
    for budget_id, scope_type, scope_id, amount, currency, thresholds in BUDGETS:
        db.execute(
            "insert into raw.catalog_budgets (budget_id, scope_type, scope_id, period, amount, currency, thresholds,"
            " source_file) values (%s, %s, %s, 'month', %s, %s, %s, 'catalog/budgets.csv')",
            [budget_id, scope_type, scope_id, Decimal(amount), currency, [Decimal(t) for t in thresholds]],
        )


def fail_reconciliation(db: psycopg.Connection) -> None:
    """AmazonS3 allocated 29.55 of 30.00: variance 1.5 %, above the 1 % failure threshold."""
    db.execute(
        "update marts.recon_summary set allocated_cost = 29.55, variance = 0.45, variance_pct = 1.5,"
        " status = 'failed' where service = 'AmazonS3'"
    )


def pass_gate(url: str) -> None:
    """Run the suites and a gate that passes (the dbt tests are covered by their own test)."""
    from meterline.invoicing.gate import evaluate_gate, require_pass
    from meterline.quality import run_suites

    run_suites(url, PERIOD, dbt_select=None)
    require_pass(evaluate_gate(url, PERIOD, require_dbt=False))


def period_feeds(db: psycopg.Connection, period_start: str, subscription_id: uuid.UUID) -> None:
    """Fresh, reconciled feeds for a period whose invoices dbt builds for real: the usage and
    cost marts (plain DDL, empty but for what the checks read), an event on the period's last
    day, a loaded CUR delivery, a reconciliation that is ok, and budget data just refreshed (a
    budget_master stand-in naming each budget of the loaded catalog)."""
    db.execute(_DDL)
    db.execute(
        "create table marts.budget_master as select budget_id, now() as last_refreshed_at from raw.catalog_budgets"
    )
    last_day = db.execute("select (%s::date + interval '1 month' - interval '1 day')::date", [period_start]).fetchone()[
        0
    ]
    db.execute(
        'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties, "timestamp",'
        " source_file, line_no, partition_date) values (%s, 'k-last', %s, 'api.request', '{}', %s, 'events/last.jsonl',"
        " 1, %s)",
        [uuid.uuid4(), subscription_id, f"{last_day}T20:00:00Z", last_day],
    )
    db.execute(
        "insert into raw.cur_deliveries (delivery_key, format, report_name, billing_period, status)"
        " values ('cur/e2e', 'cur2_parquet', 'meterline', %s, 'loaded')",
        [period_start],
    )
    db.execute(
        "insert into marts.recon_summary values (%s, %s, 'AmazonEC2', 10, 10, 0, 0, 'ok')",
        [f"RECON-{period_start[:7]}", period_start],
    )
