"""Loading the catalog into raw.catalog_*: all or nothing, from a local folder or S3."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from meterline.catalog.load import load_catalog
from meterline.catalog.validate import CatalogError
from meterline.landing import Zone
from meterline.synthetic.catalog import generate_catalog, to_csv

pytestmark = pytest.mark.integration

EXPECTED = {
    "tenants.csv": 12,
    "plans.csv": 15,
    "subscriptions.csv": 27,
    "metrics.csv": 5,
    "price_components.csv": 75,
    "price_tiers.csv": 50,
    "quotas.csv": 14,
    "tax_rates.csv": 7,
    "credits.csv": 2,
    "allocation_rules.csv": 5,
    "budgets.csv": 5,
}


def _table_counts(db) -> dict[str, int]:
    tables = [
        "tenants", "plans", "subscriptions", "metrics", "price_components", "price_tiers", "quotas", "tax_rates",
        "credits", "allocation_rules", "budgets",
    ]  # fmt: skip
    return {f"{t}.csv": db.execute(f"select count(*) from raw.catalog_{t}").fetchone()[0] for t in tables}


def test_load_from_local_folder_replaces_each_entity(warehouse_url, db, tmp_path):
    generate_catalog(str(tmp_path), period=date(2026, 10, 1))
    result = load_catalog(warehouse_url, str(tmp_path))
    assert result.row_counts == EXPECTED
    assert _table_counts(db) == EXPECTED
    # A second, smaller export replaces (not appends to) every entity.
    generate_catalog(str(tmp_path), period=date(2026, 10, 1), tenants=3, subscriptions=6)
    again = load_catalog(warehouse_url, str(tmp_path))
    assert again.row_counts["tenants.csv"] == 3
    assert _table_counts(db)["tenants.csv"] == 3
    assert db.execute("select count(distinct subscription_id) from raw.catalog_subscriptions").fetchone()[0] == 6
    source = db.execute("select distinct source_file from raw.catalog_plans").fetchall()
    assert source == [(f"{tmp_path}/catalog/plans.csv",)]
    audits = db.execute("select action, metadata -> 'row_counts' ->> 'tenants.csv' from ops.audit_log").fetchall()
    assert audits == [("catalog.loaded", "12"), ("catalog.loaded", "3")]
    budgets = db.execute(
        "select budget_id, scope_type, scope_id, period, amount, currency, thresholds from raw.catalog_budgets"
        " order by budget_id"
    ).fetchall()
    assert budgets == [
        ("budget-amazonec2", "service", "AmazonEC2", "month", Decimal("5000.00"), "USD", [80, 100]),
        ("budget-amazons3", "service", "AmazonS3", "month", Decimal("1500.00"), "USD", [80, 100]),
        ("budget-t-0001", "tenant", "t-0001", "month", Decimal("2000.00"), "USD", [50, 80, 100]),
        ("budget-t-0002", "tenant", "t-0002", "month", Decimal("450.00"), "EUR", [80, 100]),
        ("budget-t-0003", "tenant", "t-0003", "month", Decimal("9000.00"), "EUR", [80, 100]),
    ]


def test_invalid_export_loads_nothing_and_lists_every_problem(warehouse_url, db, tmp_path):
    catalog = generate_catalog(str(tmp_path), period=date(2026, 10, 1))
    load_catalog(warehouse_url, str(tmp_path))
    subs = [dict(r) for r in catalog.files["subscriptions.csv"]]
    subs[0]["plan_id"] = "gold-usd"
    tiers = [dict(r) for r in catalog.files["price_tiers.csv"]]
    tiers[0]["unit_price"] = "-1"
    zone = Zone(str(tmp_path))
    zone.write_bytes("catalog/subscriptions.csv", to_csv(subs))
    zone.write_bytes("catalog/price_tiers.csv", to_csv(tiers))
    with pytest.raises(CatalogError) as refused:
        load_catalog(warehouse_url, str(tmp_path))
    assert [str(p) for p in refused.value.problems] == [
        "price_tiers.csv, line 2, field unit_price: must not be negative: -1",
        "subscriptions.csv, line 2, field plan_id: unknown plan gold-usd",
    ]
    assert "catalog refused, 2 problem(s)" in str(refused.value)
    # The previous catalog is untouched.
    assert _table_counts(db) == EXPECTED
    assert db.execute("select count(*) from raw.catalog_subscriptions where plan_id = 'gold-usd'").fetchone()[0] == 0


def test_load_from_s3_with_optional_aws_invoice_totals(warehouse_url, db, s3_bucket):
    url = f"{s3_bucket}/landing"
    generate_catalog(url, period=date(2026, 10, 1), aws_invoice_totals={"2026-10": (Decimal("1234.567891"), "USD")})
    result = load_catalog(warehouse_url, url)
    assert result.row_counts["aws_invoice_totals.csv"] == 1
    assert result.row_counts["subscriptions.csv"] == 27
    row = db.execute(
        "select billing_period, total, currency, source_file from raw.catalog_aws_invoice_totals"
    ).fetchone()
    assert row == ("2026-10", Decimal("1234.567891"), "USD", f"{url}/catalog/aws_invoice_totals.csv")


def test_an_export_without_budgets_keeps_the_loaded_budgets(warehouse_url, db, tmp_path):
    """budgets.csv is optional, like aws_invoice_totals.csv: absent, its table is left as it was."""
    generate_catalog(str(tmp_path), period=date(2026, 10, 1))
    load_catalog(warehouse_url, str(tmp_path))
    (tmp_path / "catalog" / "budgets.csv").unlink()
    result = load_catalog(warehouse_url, str(tmp_path))
    assert "budgets.csv" not in result.row_counts
    assert db.execute("select count(*) from raw.catalog_budgets").fetchone()[0] == 5
