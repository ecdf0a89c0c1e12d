"""Shared by the pricing tests: a generated catalog month loaded, usage in place, invoices built."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from meterline import transform
from meterline.catalog.load import load_catalog
from meterline.synthetic.catalog import GeneratedCatalog, generate_catalog

# The models this area owns; built on their own so the tests do not depend on the events and
# cost areas' marts (usage_metered_hourly is created here with its contract's columns; the
# events staging views only read raw.events, for late-usage adjustments).
BILLING_SELECTION = [
    "--select",
    "currencies",
    "path:models/staging/catalog",
    "path:models/staging/billing",
    "path:models/staging/events",
    "path:snapshots",
    "path:models/intermediate/billing",
    "path:models/marts/billing",
    # only the tests whose parents are all selected (not the usage area's cross-model checks)
    "--indirect-selection",
    "cautious",
]
# The margins read the cost area (fct_tenant_margin: fact_cost_allocated; fct_period_margin: it and fact_cost_raw).
EXCLUDE = ["fct_tenant_margin", "fct_period_margin"]

USAGE_DDL = """
create table if not exists marts.usage_metered_hourly (
    subscription_id uuid not null, metric_code text not null, hour timestamptz not null,
    quantity numeric not null, event_type text)
"""


def put_usage(db: psycopg.Connection, rows: list[tuple[str, str, datetime, Decimal]]) -> None:
    db.execute(USAGE_DDL)
    with db.cursor().copy(
        "copy marts.usage_metered_hourly (subscription_id, metric_code, hour, quantity) from stdin"
    ) as cp:
        for row in rows:
            cp.write_row(row)


def build_invoices(
    url: str, *extra: str, as_of: datetime | date, exclude: tuple[str, ...] = (), unit_tests: bool = False
) -> None:
    """dbt build of the billing selection as of `as_of` (drafts through its month); the dbt unit
    tests (pricing scenarios) only on request, since they do not depend on the data."""
    skip = [*EXCLUDE, *exclude, *([] if unit_tests else ["test_type:unit"])]
    transform.run(
        ["build", *BILLING_SELECTION, "--exclude", *skip, "--quiet", *extra],
        url,
        as_of=as_of,
        capture_output=True,
        text=True,
    )


def rebuild_invoices(url: str, *, as_of: datetime | date) -> None:
    """The invoice models only (catalog views and snapshots unchanged since the last build)."""
    transform.run(
        ["build", "--select", "path:models/intermediate/billing", "path:models/marts/billing", "--exclude",
         *EXCLUDE, "test_type:unit", "--indirect-selection", "cautious", "--quiet"],
        url,
        as_of=as_of,
        capture_output=True,
        text=True,
    )  # fmt: skip


def month(tmp_path: Path, url: str, period: date, **kwargs) -> GeneratedCatalog:
    catalog = generate_catalog(str(tmp_path), period=period, **kwargs)
    load_catalog(url, str(tmp_path))
    return catalog
