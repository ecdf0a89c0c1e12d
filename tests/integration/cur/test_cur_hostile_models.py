"""Hostile CUR deliveries through dbt and the quality suite (issue 14): a credit larger than a
service's usage, a period mixing currencies, a tenant tag column that disappears, and a change of
TENANT_TAG_KEY. Hand-written deliveries, expected figures worked out by hand in the comments."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from meterline import transform
from meterline.cur.load import run
from meterline.quality.suites import run_suites

from .conftest import write_legacy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARCH, APRIL = date(2025, 3, 1), date(2025, 4, 1)
HEADER = [
    "identity/LineItemId",
    "bill/InvoiceId",
    "lineItem/LineItemType",
    "lineItem/UsageStartDate",
    "lineItem/UsageEndDate",
    "lineItem/ProductCode",
    "lineItem/CurrencyCode",
    "lineItem/UnblendedCost",
]


def _line(n: int, kind: str, day: str, service: str, currency: str, cost: str, *tags: str) -> list[str]:
    return [f"line-{n}", "", kind, f"{day}T00:00:00Z", f"{day}T01:00:00Z", service, currency, cost, *tags]


def _catalog(db) -> None:
    db.execute("insert into raw.catalog_plans values ('std', 'Standard', 'USD', 0, 0, 'test')")
    for tenant in ("t-1", "t-2"):
        db.execute("insert into raw.catalog_tenants values (%s, %s, 'US', 'USD', null, 'test')", [tenant, tenant])
        db.execute(
            "insert into raw.catalog_subscriptions values (%s, %s, 'std', '2025-01-01', null, 'test')",
            [uuid.uuid5(uuid.NAMESPACE_URL, tenant), tenant],
        )
    db.execute("insert into raw.catalog_allocation_rules values (1, 'AmazonS3', 'even', null, '2025-01-01', null, 't')")


def _build(warehouse_url: str) -> None:
    transform.run(["run", "--select", "+path:models/marts/cost"], warehouse_url, capture_output=True)


def test_credits_currencies_lost_tags_and_a_new_tenant_tag_key(db, warehouse_url, landing: Path, monkeypatch):
    _catalog(db)
    march = [
        _line(1, "Usage", "2025-03-02", "AmazonEC2", "USD", "10.005", "t-1", "t-2"),
        _line(2, "Usage", "2025-03-02", "AmazonEC2", "USD", "5.00", "t-2", "t-2"),
        _line(3, "Usage", "2025-03-03", "AmazonS3", "USD", "3.00", "t-1", ""),
        _line(4, "Credit", "2025-03-03", "AmazonS3", "USD", "-7.50", "", ""),  # S3 totals -4.50
    ]
    tags = ["resourceTags/user:tenant_id", "resourceTags/user:owner"]
    write_legacy(landing, "20250301-20250401", "m1", [*HEADER, *tags], march)
    # April lost the tenant tag column and mixes currencies.
    april = [
        _line(1, "Usage", "2025-04-02", "AmazonEC2", "USD", "2.00", "t-1"),
        _line(2, "Usage", "2025-04-02", "AmazonEC2", "JPY", "250", "t-1"),
    ]
    write_legacy(landing, "20250401-20250501", "a1", [*HEADER, "resourceTags/user:owner"], april)
    assert [o.status for o in run(warehouse_url, str(landing)).outcomes] == ["loaded", "loaded"]

    _build(warehouse_url)
    tests = transform.run(
        ["test", "--select", "path:models/staging/cur", "path:models/marts/cost", "path:tests/cost"],
        warehouse_url,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]

    allocated = db.execute(
        "select billing_period, service, currency, tenant_id, allocation_method, quarantine_reason, allocated_cost"
        " from marts.fact_cost_allocated order by 1, 2, 3, 4 nulls last, 5"
    ).fetchall()
    assert allocated == [
        # EC2: 10.005 + 5.00 = 15.005 -> 15.01; floors 10.00 and 5.00, the cent to the remainder.
        (MARCH, "AmazonEC2", "USD", "t-1", "tag", None, Decimal("10.01")),
        (MARCH, "AmazonEC2", "USD", "t-2", "tag", None, Decimal("5.00")),
        # S3: 3.00 tagged, the -7.50 credit split evenly: -4.50 in all, negative and conserved.
        (MARCH, "AmazonS3", "USD", "t-1", "even", None, Decimal("-3.75")),
        (MARCH, "AmazonS3", "USD", "t-1", "tag", None, Decimal("3.00")),
        (MARCH, "AmazonS3", "USD", "t-2", "even", None, Decimal("-3.75")),
        # April: untagged (the tag column is gone), EC2 has no rule; each currency on its own.
        (APRIL, "AmazonEC2", "JPY", None, "quarantine", "no_rule", Decimal("250.00")),
        (APRIL, "AmazonEC2", "USD", None, "quarantine", "no_rule", Decimal("2.00")),
    ]
    summary = db.execute(
        "select recon_id, service, currency, raw_cost, allocated_cost, variance, status, status_reason"
        " from marts.recon_summary order by 1, 2, 3"
    ).fetchall()
    mixed = (
        "the period mixes currencies (JPY, USD) and no conversion is configured: costs are reconciled"
        " per currency, never summed into one bill"
    )
    assert summary == [
        ("RECON-2025-03", "AmazonEC2", "USD", Decimal("15.01"), Decimal("15.01"), Decimal("0.00"), "ok", None),
        ("RECON-2025-03", "AmazonS3", "USD", Decimal("-4.50"), Decimal("-4.50"), Decimal("0.00"), "ok", None),
        ("RECON-2025-04", "AmazonEC2", "JPY", Decimal("250.00"), Decimal("250.00"), Decimal("0.00"), "failed", mixed),
        ("RECON-2025-04", "AmazonEC2", "USD", Decimal("2.00"), Decimal("2.00"), Decimal("0.00"), "failed", mixed),
    ]
    exceptions = {
        (r[0], r[1], r[2]): (r[3], r[4])
        for r in db.execute("select recon_id, category, key, amount, detail from marts.recon_exceptions")
    }
    assert sorted(exceptions) == [
        ("RECON-2025-03", "Tagging", "untagged:AmazonS3"),
        ("RECON-2025-04", "Allocation", "currency_mix"),
        ("RECON-2025-04", "Allocation", "quarantine:AmazonEC2:no_rule"),
        ("RECON-2025-04", "Allocation", "quarantine:AmazonEC2:no_rule:JPY"),
        ("RECON-2025-04", "Tagging", "tag_removed:user_tenant_id"),
        ("RECON-2025-04", "Tagging", "untagged:AmazonEC2"),
        ("RECON-2025-04", "Tagging", "untagged:AmazonEC2:JPY"),
    ]
    assert exceptions[("RECON-2025-03", "Tagging", "untagged:AmazonS3")][0] == Decimal("-7.50")
    assert exceptions[("RECON-2025-04", "Allocation", "currency_mix")] == (
        None,
        f"{mixed}; raw cost per currency: JPY 250.00, USD 2.00",
    )
    assert exceptions[("RECON-2025-04", "Allocation", "quarantine:AmazonEC2:no_rule:JPY")][0] == Decimal("250.00")
    assert exceptions[("RECON-2025-04", "Tagging", "tag_removed:user_tenant_id")] == (
        None,
        "tag user_tenant_id of delivery 1 is missing from live delivery 2 (hostile, compared with first delivery"
        " of 2025-04: against delivery 1 of 2025-03, the report's latest earlier period): lines that carried it"
        " are untagged now",
    )

    # The gate's allocation suite: the negative S3 total is not a leak, March passes.
    suite = run_suites(warehouse_url, "2025-03", suites=("fact_cost_allocated",), dbt_select=None)
    assert [(r.expectation, r.success) for r in suite.results] == [("conservation_per_service", True)]

    # TENANT_TAG_KEY changes: the incremental build re-derives every period on the new key.
    monkeypatch.setenv("TENANT_TAG_KEY", "user:owner")
    transform.run(["run", "--select", "fact_cost_raw", "fact_cost_allocated"], warehouse_url, capture_output=True)
    tagged = db.execute(
        "select billing_period, tenant_tag_key, resource_tags_user_tenant_id, billing_currency, count(*),"
        " sum(billed_cost) from marts.fact_cost_raw group by 1, 2, 3, 4 order by 1, 3 nulls last, 4"
    ).fetchall()
    assert tagged == [
        (MARCH, "user_owner", "t-2", "USD", 2, Decimal("15.005")),
        (MARCH, "user_owner", None, "USD", 2, Decimal("-4.50")),
        (APRIL, "user_owner", "t-1", "JPY", 1, Decimal("250")),
        (APRIL, "user_owner", "t-1", "USD", 1, Decimal("2.00")),
    ]
    march_ec2 = db.execute(
        "select tenant_id, allocated_cost from marts.fact_cost_allocated"
        " where billing_period = %s and service = 'AmazonEC2'",
        [MARCH],
    ).fetchall()
    assert march_ec2 == [("t-2", Decimal("15.01"))]
