"""March 2025 of a catalog written by hand (tests/fixtures/handwritten), built the way the
pipeline builds a month: the real loaders, then the close's dbt build. No value of it comes from
our generators: event types chat.message / api.call / batch.run, metrics chat_tokens /
api_calls / batch_ms.

Three tenants, one subscription each, all from 2025-03-01 (31 active days):
- t-0001 US, USD, plan team-usd: base 100.00 + 1,500,000 chat tokens x 0.00002 = 30.00;
  130.00, tax 10 % 13.00, total 143.00
- t-0002 DE, EUR, plan team-eur: base 200.00 + 247 api calls x 0.05 = 12.35; catalog credit
  10.00 (onboarding); tax 19 % of 202.35 = 38.4465 -> 38.45; total 240.80
- t-0003 JP, JPY, plan pro-jpy: base 5000 + 1,234 batch ms x 1 = 1234; tax 10 % of 6234 =
  623.4 -> 623; total 6857
Cloud cost (a legacy CUR delivery): AmazonEC2 40.06 (tag t-0001) + 30.063456 (tag t-0002),
AmazonS3 30.00 untagged with no allocation rule (quarantine); 100.123456 USD in all.

The month is built once per test session into a template database (`billing_month` fixture in
tests/conftest.py); each test gets its own copy (`month_url`).
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

PERIOD = "2025-03"
PERIOD_START = date(2025, 3, 1)
CLOSED = datetime(2025, 4, 1, tzinfo=UTC)  # the close's as-of instant: the drafts run through April
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "handwritten"
SUB = {
    "t-0001": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "t-0002": uuid.UUID("00000000-0000-4000-8000-000000000002"),
    "t-0003": uuid.UUID("00000000-0000-4000-8000-000000000003"),
}
DRAFT = {tenant: f"D-202503-{sub}" for tenant, sub in SUB.items()}
TOTALS = {"t-0001": Decimal("143.00"), "t-0002": Decimal("240.80"), "t-0003": Decimal("6857")}
CLOUD_COST = Decimal("100.123456")


def event_record(tenant: str, event_type: str, at: str, key: str, **properties) -> dict:
    """One usage event as the metering service writes it, for the tenant's subscription; its
    event_id follows from the idempotency key, so a re-delivery is the same record."""
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"meterline-test:{key}")),
        "idempotency_key": key,
        "subscription_id": str(SUB[tenant]),
        "event_type": event_type,
        "timestamp": at,
        "properties": properties,
    }


def _events() -> dict[str, list[dict]]:
    """The month's events by day partition (YYYY-MM-DD): what the metering service dumped."""
    days: dict[str, list[dict]] = {}

    def event(tenant: str, event_type: str, at: str, key: str, **properties) -> None:
        days.setdefault(at[:10], []).append(event_record(tenant, event_type, at, key, **properties))

    # t-0001: 3 chat messages of 500,000 tokens, the last on the month's last day.
    for n, at in enumerate(["2025-03-01T10:05:00Z", "2025-03-15T09:00:00Z", "2025-03-31T22:15:00Z"]):
        event("t-0001", "chat.message", at, f"chat-{n}", tokens=500_000)
    # t-0002: 247 API calls over the first 19 days, 13 a day.
    for n in range(247):
        event("t-0002", "api.call", f"2025-03-{n // 13 + 1:02d}T08:{n % 13:02d}:00Z", f"call-{n}")
    # t-0003: two batch runs, 1,000 and 234 ms.
    event("t-0003", "batch.run", "2025-03-20T12:10:00Z", "batch-0", duration_ms=1000)
    event("t-0003", "batch.run", "2025-03-20T12:40:00Z", "batch-1", duration_ms=234)
    return days


def write_landing(root: Path) -> list[date]:
    """The month's landing zone under `root`: the catalog and CUR files as written by hand, the
    events as JSON Lines, one file per day. Returns the days with events."""
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True)
    days = _events()
    for day, events in days.items():
        y, m, d = day.split("-")
        folder = root / "events" / f"year={y}" / f"month={m}" / f"day={d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return sorted(date.fromisoformat(d) for d in days)


def build_month(url: str, landing: Path) -> None:
    """Load the month through the real loaders and build it as the close does (dbt build as of
    the period's end, its tests recorded for the gate)."""
    from meterline import close
    from meterline.catalog.load import load_catalog
    from meterline.cur import load as cur_load
    from meterline.events.load import load_partition

    days = write_landing(landing)
    load_catalog(url, str(landing))
    cur_load.run(url, str(landing))
    for day in days:
        load_partition(day, landing_url=str(landing), conninfo=url)
    close.build(url, PERIOD)


def catalog_never_had(db, entity: str, where: str, params: list) -> None:
    """Remove rows from the catalog as the month's close saw it: from raw.catalog_<entity> and its
    snapshot's history (a row deleted today would only end its version today, after the period's
    close, and the close prices a past month with the catalog as it was: docs/billing.md). Then a
    row loaded again is that key's first version, valid for every month."""
    from psycopg import sql

    for table in (sql.Identifier("raw", f"catalog_{entity}"), sql.Identifier("staging", f"snap_catalog__{entity}")):
        db.execute(sql.SQL("delete from {} where ").format(table) + sql.SQL(where), params)


def pass_gate(url: str) -> None:
    """The suites and a gate that passes, as the close runs them after its build."""
    from meterline.invoicing.gate import evaluate_gate, require_pass
    from meterline.quality import run_suites

    run_suites(url, PERIOD, dbt_select=None)
    require_pass(evaluate_gate(url, PERIOD))
