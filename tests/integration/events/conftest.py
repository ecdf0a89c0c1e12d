"""Fixtures for the usage-event tests: a tiny catalog in the landing zone and in the warehouse."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from meterline.landing import Zone

METRICS = [
    ("llm_tokens", "llm.completion", "sum", "tokens", "tokens"),
    ("api_requests", "api.request", "count", "", "requests"),
    ("storage_bytes", "storage.write", "sum", "bytes", "bytes"),
    ("compute_ms", "compute.job", "sum", "duration_ms", "ms"),
    ("storage_peak_bytes", "storage.snapshot", "max", "bytes", "bytes"),
]


@dataclass
class Catalog:
    landing_url: str
    subscriptions: list[tuple[str, str, str, str, str]]  # id, tenant, plan, started_at, ended_at

    @property
    def subscription_ids(self) -> list[str]:
        return sorted({s[0] for s in self.subscriptions})


def _csv(header: list[str], rows: list[tuple]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def write_catalog(landing_url: str, conn: psycopg.Connection, *, tenants: int = 4, per_tenant: int = 2) -> Catalog:
    """catalog/subscriptions.csv and metrics.csv in the landing zone, and the same rows in raw.catalog_*.

    The first subscription changes plan on 2025-03-10 (two rows, one subscription_id), as
    docs/catalog.md allows.
    """
    subs = []
    for t in range(1, tenants + 1):
        for s in range(per_tenant):
            sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"meterline-test/t-{t:04d}/{s}"))
            subs.append((sid, f"t-{t:04d}", "starter", "2025-01-01T00:00:00Z", ""))
    first = subs[0]
    subs[0] = (first[0], first[1], "starter", first[3], "2025-03-10T00:00:00Z")
    subs.insert(1, (first[0], first[1], "pro", "2025-03-10T00:00:00Z", ""))
    zone = Zone(landing_url)
    zone.write_bytes(
        "catalog/subscriptions.csv", _csv(["subscription_id", "tenant_id", "plan_id", "started_at", "ended_at"], subs)
    )
    zone.write_bytes(
        "catalog/metrics.csv", _csv(["metric_code", "event_type", "aggregation", "property", "unit"], METRICS)
    )
    with conn.cursor() as cur:
        cur.executemany(
            "insert into raw.catalog_subscriptions (subscription_id, tenant_id, plan_id, started_at, ended_at,"
            " source_file) values (%s, %s, %s, %s, nullif(%s, '')::timestamptz, 'catalog/subscriptions.csv')",
            subs,
        )
        cur.executemany(
            "insert into raw.catalog_metrics (metric_code, event_type, aggregation, property, unit, source_file)"
            " values (%s, %s, %s, nullif(%s, ''), %s, 'catalog/metrics.csv')",
            METRICS,
        )
    return Catalog(landing_url, subs)


@pytest.fixture
def landing(tmp_path: Path) -> str:
    return str(tmp_path / "landing")


@pytest.fixture
def catalog(landing: str, db: psycopg.Connection) -> Catalog:
    return write_catalog(landing, db)
