"""Helpers for the gate, budget and emitter tests around a built month (tests/handwritten_month.py):
budgets as budgets.csv loads them, a reconciliation that fails, and the fresh feeds a generated
catalog month needs to pass the gate.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg

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
