"""Property: random tiers, models and usage give invoices whose lines sum exactly to the header,
in whole minor units, equal to the oracle, and independent of the order usage rows arrive in.

Each example is a batch of random pricing cases priced by one dbt build (a build is the slow
part); every case is billed twice, to twin subscriptions whose usage rows are the same quantities
split and inserted in a different order.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from _billing_month import build_invoices, put_usage
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from oracle.pricing import price_catalog

from meterline.catalog.load import load_catalog
from meterline.landing import Zone
from meterline.synthetic.catalog import METRICS, to_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERIOD = date(2026, 10, 1)
MONTH_VARS = '{"invoice_period_from": "2026-10-01", "invoice_period_to": "2026-10-01"}'

prices = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("3"), places=6)
fees = st.decimals(min_value=Decimal(0), max_value=Decimal(50), places=2)


@st.composite
def pricing_case(draw) -> dict:
    model = draw(st.sampled_from(["per_unit", "graduated", "volume", "package"]))
    bounds = sorted(draw(st.sets(st.integers(1, 20_000), min_size=1, max_size=3)))
    tiers = [
        {"up_to": str(b) if i < len(bounds) else "", "unit_price": draw(prices), "flat_fee": draw(fees)}
        for i, b in enumerate([*bounds, None])
    ]
    return {
        "model": model,
        "currency": draw(st.sampled_from(["USD", "JPY", "EUR"])),
        "base_fee": draw(fees),
        "commitment": draw(st.sampled_from([Decimal(0), Decimal(0), Decimal("25.50"), Decimal(400)])),
        "included": draw(st.sampled_from([0, 0, 100, 5000])),
        "unit_price": draw(prices),
        "package_size": draw(st.integers(1, 2500)),
        "tiers": tiers,
        "chunks": draw(st.lists(st.integers(0, 15_000), min_size=0, max_size=6)),
        "quota": draw(st.sampled_from([None, None, 10_000, 30_000])),
        "start_day": draw(st.sampled_from([1, 1, 15, 31])),
    }


def _catalog(cases: list[dict]) -> tuple[dict[str, list[dict[str, str]]], list[tuple], list[tuple]]:
    country = {"USD": "US", "JPY": "JP", "EUR": "DE"}
    files: dict[str, list[dict[str, str]]] = {
        "tenants.csv": [
            {"tenant_id": f"t-{c}", "name": c, "country": country[c], "currency": c, "billing_email": ""}
            for c in country
        ],
        "plans.csv": [],
        "subscriptions.csv": [],
        "metrics.csv": [dict(m) for m in METRICS],
        "price_components.csv": [],
        "price_tiers.csv": [],
        "quotas.csv": [],
        "tax_rates.csv": [
            {"country": "US", "rate": "0.0725", "valid_from": "2020-01-01", "valid_to": ""},
            {"country": "JP", "rate": "0.10", "valid_from": "2020-01-01", "valid_to": ""},
            {"country": "DE", "rate": "0.19", "valid_from": "2020-01-01", "valid_to": ""},
        ],
        "credits.csv": [],
        "allocation_rules.csv": [],
    }
    first, second = [], []
    rng = random.Random(len(cases))
    for n, case in enumerate(cases):
        plan = f"plan-{n}"
        fee = case["base_fee"].quantize(Decimal(1)) if case["currency"] == "JPY" else case["base_fee"]
        files["plans.csv"].append(
            {"plan_id": plan, "name": plan, "currency": case["currency"], "monthly_base_fee": str(fee),
             "minimum_commitment": str(case["commitment"])}
        )  # fmt: skip
        tiered = case["model"] in ("graduated", "volume")
        files["price_components.csv"].append(
            {"plan_id": plan, "metric_code": "llm_tokens", "model": case["model"],
             "included_units": str(case["included"]), "unit_price": "" if tiered else str(case["unit_price"]),
             "package_size": str(case["package_size"]) if case["model"] == "package" else ""}
        )  # fmt: skip
        if tiered:
            for t, tier in enumerate(case["tiers"], start=1):
                files["price_tiers.csv"].append(
                    {"plan_id": plan, "metric_code": "llm_tokens", "tier": str(t), "up_to": tier["up_to"],
                     "unit_price": str(tier["unit_price"]), "flat_fee": str(tier["flat_fee"])}
                )  # fmt: skip
        start = datetime(2026, 10, case["start_day"], tzinfo=UTC)
        twins = [str(uuid.UUID(int=(n + 1) * 1000 + k, version=4)) for k in (1, 2)]
        for sid in twins:
            files["subscriptions.csv"].append(
                {"subscription_id": sid, "tenant_id": f"t-{case['currency']}", "plan_id": plan,
                 "started_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "ended_at": ""}
            )  # fmt: skip
            if case["quota"]:
                files["quotas.csv"].append(
                    {"subscription_id": sid, "event_type": "llm.completion", "limit_value": str(case["quota"]),
                     "period": "month", "action": "allow_with_overage", "overage_unit_price": "0.0005"}
                )  # fmt: skip
        hours = [start + timedelta(hours=h) for h in range(len(case["chunks"]))]
        first += [(twins[0], "llm_tokens", h, Decimal(q)) for h, q in zip(hours, case["chunks"], strict=True)]
        # The twin: the same quantities at other hours, split in two, arriving in reverse order.
        for h, q in reversed(list(zip(hours, case["chunks"], strict=True))):
            part = rng.randint(0, q)
            later = h + timedelta(hours=len(hours) + 3)
            second += [(twins[1], "llm_tokens", later, Decimal(q - part)), (twins[1], "llm_tokens", h, Decimal(part))]
    return files, first, second


@settings(
    max_examples=2,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(pricing_case(), min_size=4, max_size=10))
def test_random_pricing_sums_exactly_and_ignores_row_order(warehouse_url, db, tmp_path, cases):
    files, first, second = _catalog(cases)
    zone = Zone(str(tmp_path))
    for name, rows in files.items():
        zone.write_bytes(f"catalog/{name}", to_csv(rows) or ",".join(_HEADERS[name]).encode() + b"\n")
    load_catalog(warehouse_url, str(tmp_path))
    db.execute("drop table if exists marts.usage_metered_hourly")
    for snapshot in ("plans", "price_components", "price_tiers", "quotas", "tax_rates", "tenants"):
        db.execute(f"drop table if exists staging.snap_catalog__{snapshot}")
    put_usage(db, second)
    put_usage(db, first)
    build_invoices(warehouse_url, "--vars", MONTH_VARS, as_of=date(2026, 11, 1))

    headers = {
        r[0]: r[1:]
        for r in db.execute(
            "select invoice_id, subtotal, credits, tax, total, status, minor_units from marts.invoice_header"
        )
    }
    lines: dict[str, list[tuple]] = {}
    for invoice_id, kind, quantity, amount in db.execute(
        "select invoice_id, kind, quantity, amount from marts.invoice_draft_lines order by invoice_id, line_no"
    ):
        lines.setdefault(invoice_id, []).append((kind, quantity, amount))
    oracle = price_catalog(files, first + second, through=PERIOD)
    assert len(headers) == 2 * len(cases) == len(oracle)
    for invoice_id, (subtotal, credits, tax, total, status, minor_units) in headers.items():
        own = lines.get(invoice_id, [])
        assert subtotal == sum((a for k, _, a in own if k != "credit"), Decimal(0))
        assert total == subtotal - credits + tax
        assert all(a == round(a, minor_units) for _, _, a in own)
        expected = oracle[invoice_id]
        assert (subtotal, credits, tax, total, status) == (
            expected.subtotal, expected.credits, expected.tax, expected.total, expected.status,
        )  # fmt: skip
    for n in range(len(cases)):
        a, b = (f"D-202610-{uuid.UUID(int=(n + 1) * 1000 + k, version=4)}" for k in (1, 2))
        assert headers[a] == headers[b]
        assert lines.get(a) == lines.get(b)


_HEADERS = {
    "quotas.csv": ["subscription_id", "event_type", "limit_value", "period", "action", "overage_unit_price"],
    "price_tiers.csv": ["plan_id", "metric_code", "tier", "up_to", "unit_price", "flat_fee"],
    "credits.csv": ["credit_id", "tenant_id", "amount", "currency", "reason", "created_by", "created_at"],
    "allocation_rules.csv": ["rule_version", "service", "method", "driver_metric", "valid_from", "valid_to"],
}
