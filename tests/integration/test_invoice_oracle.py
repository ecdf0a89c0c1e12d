"""The dbt draft invoices equal an independent Decimal oracle (tests/oracle) to the cent, for
every subscription month of a generated catalog with seeded usage."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from _billing_month import build_invoices, month, put_usage
from oracle.pricing import price_catalog
from oracle.usage import generate_usage

from meterline import transform

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERIOD = date(2026, 10, 1)
# Built as of October's close: drafts for every month through November (the month of as_of).
AS_OF = date(2026, 11, 1)

# The pricing scenarios written as dbt unit tests (given / expect, models/*/billing/_billing__models.yml).
SCENARIOS = {
    "proration_start_on_15th_end_mid_month_and_plan_change",
    "price_models_tier_boundaries_and_zero_usage",
    "quota_reached_exceeded_blocked_and_across_plan_change",
    "base_fee_minimum_commitment_and_jpy_rounding",
    "tax_in_two_countries_rate_change_and_missing_rate",
    "credits_capped_at_each_invoice_and_carried_forward",
    "manual_credits_oldest_first_open_drafts_only",
    "draft_tax_rounding_and_totals",
    "draft_plausibility_ceiling_median_and_representable",
    "header_status_from_issued_and_gate",
}


def _invoices(db):
    headers = {
        row[0]: row[1:]
        for row in db.execute(
            "select invoice_id, currency, subtotal, credits, tax, total, status from marts.invoice_header"
        )
    }
    lines: dict[str, list[tuple]] = {}
    for invoice_id, kind, metric, quantity, amount in db.execute(
        "select invoice_id, kind, metric_code, quantity, amount from marts.invoice_draft_lines order by 1, line_no"
    ):
        lines.setdefault(invoice_id, []).append((kind, metric or "", quantity, amount))
    return headers, lines


def test_unit_tests_pass_and_dbt_invoices_equal_the_oracle(warehouse_url, db, tmp_path):
    catalog = month(tmp_path, warehouse_url, PERIOD)
    usage = generate_usage(catalog.files["subscriptions.csv"], datetime(2026, 10, 1, tzinfo=UTC))
    put_usage(db, usage)
    build_invoices(warehouse_url, as_of=AS_OF, unit_tests=True)

    # dbt ran every pricing unit test (each right before its model) and all passed.
    results = json.loads((transform.target_dir() / "run_results.json").read_text())["results"]
    unit = {r["unique_id"].split(".")[-1]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert unit == dict.fromkeys(SCENARIOS, "pass")
    assert all(r["status"] in ("pass", "success") for r in results)

    oracle = price_catalog(catalog.files, usage, through=AS_OF)
    headers, lines = _invoices(db)
    assert set(headers) == set(oracle)
    mismatches = []
    for invoice_id, expected in oracle.items():
        got = headers[invoice_id]
        want = (expected.currency, expected.subtotal, expected.credits, expected.tax, expected.total, expected.status)
        if got != want:
            mismatches.append((invoice_id, got, want))
        want_lines = sorted((ln.kind, ln.metric_code or "", ln.quantity, ln.amount) for ln in expected.lines)
        if sorted(lines.get(invoice_id, [])) != want_lines:
            mismatches.append((invoice_id, lines.get(invoice_id), want_lines))
    assert mismatches == []

    # The month has what the scenarios need, so the comparison above is not vacuous.
    october = [inv for inv in oracle.values() if inv.period_start == PERIOD]
    assert len(october) == 24
    kinds = {ln.kind for inv in october for ln in inv.lines}
    assert kinds == {"base_fee", "usage", "overage", "minimum_commit", "credit"}
    assert {inv.currency for inv in october} == {"USD", "EUR", "GBP", "JPY", "CHF"}
    assert sum(inv.total for inv in october) > Decimal(10000)
    assert any(inv.total == 0 and inv.credits > 0 for inv in october)  # a credit larger than the invoice


def test_missing_tax_rate_and_missing_price_block_only_their_invoices(warehouse_url, db, tmp_path):
    catalog = month(tmp_path, warehouse_url, PERIOD)
    usage = generate_usage(catalog.files["subscriptions.csv"], datetime(2026, 10, 1, tzinfo=UTC))
    put_usage(db, usage)
    db.execute("delete from raw.catalog_tax_rates where country = 'GB'")
    db.execute("delete from raw.catalog_price_components where plan_id = 'pro-usd' and metric_code = 'compute_ms'")
    db.execute("delete from raw.catalog_price_tiers where plan_id = 'pro-usd' and metric_code = 'compute_ms'")
    build_invoices(warehouse_url, as_of=AS_OF)

    rows = db.execute(
        "select h.invoice_id, h.status, h.blocked_reason, t.country, h.total"
        " from marts.invoice_header h join raw.catalog_tenants t using (tenant_id)"
        " where h.period_start = %s order by 1",
        [PERIOD],
    ).fetchall()
    blocked = {r[0]: r[2] for r in rows if r[1] == "blocked"}
    gb = {r[0] for r in rows if r[3] == "GB"}
    assert gb and gb <= set(blocked)
    for invoice_id in gb:
        assert "no tax rate for country GB on 2026-10-31" in blocked[invoice_id]
    pro_usd_with_compute = {
        f"D-202610-{sid}"
        for (sid,) in db.execute(
            "select distinct s.subscription_id from raw.catalog_subscriptions s"
            " join marts.usage_metered_hourly u on u.subscription_id = s.subscription_id"
            " and u.hour >= s.started_at and (s.ended_at is null or u.hour < s.ended_at)"
            " where s.plan_id = 'pro-usd' and u.metric_code = 'compute_ms' and u.quantity > 0"
            " and u.hour >= '2026-10-01' and u.hour < '2026-11-01'"
        )
    }
    assert pro_usd_with_compute
    for invoice_id in pro_usd_with_compute:
        assert "no price for metric compute_ms on plan pro-usd" in blocked[invoice_id]
    assert set(blocked) == gb | pro_usd_with_compute
    assert len(rows) - len(blocked) > 10  # the others stay open
