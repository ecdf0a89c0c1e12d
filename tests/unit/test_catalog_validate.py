"""Catalog validation: each rule of docs/catalog.md refuses the export with file, line and field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.catalog.validate import validate
from meterline.synthetic.catalog import generate_catalog, to_csv

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    root = tmp_path_factory.mktemp("catalog")
    return generate_catalog(str(root), period=date(2026, 10, 1)).files


def _files(rows: dict[str, list[dict[str, str]]]) -> dict[str, bytes]:
    return {name: to_csv(r) for name, r in rows.items()}


def _problems(export, name: str, edit) -> list[str]:
    rows = {k: [dict(r) for r in v] for k, v in export.items()}
    edit(rows[name])
    _, problems = validate(_files(rows))
    return [str(p) for p in problems]


def test_generated_catalog_is_valid(export):
    parsed, problems = validate(_files(export))
    assert problems == []
    assert len(parsed["metrics.csv"].rows) == 5
    assert {r["metric_code"] for r in parsed["metrics.csv"].rows} == {
        "llm_tokens", "api_requests", "storage_bytes", "compute_ms", "storage_peak_bytes",
    }  # fmt: skip
    assert len(parsed["subscriptions.csv"].rows) == 27  # 24 subscriptions, 3 with a plan change


def test_generator_covers_the_edge_cases(export):
    subs = export["subscriptions.csv"]
    starts = [r["started_at"] for r in subs]
    assert "2026-10-15T00:00:00Z" in starts  # starts on the 15th
    assert any(r["ended_at"].startswith("2026-10") for r in subs)  # ends mid-month
    ids = [r["subscription_id"] for r in subs]
    assert len(ids) - len(set(ids)) == 3  # plan changes
    assert {r["model"] for r in export["price_components.csv"]} == {"per_unit", "graduated", "volume", "package"}
    assert {r["action"] for r in export["quotas.csv"]} == {"block", "allow_with_overage"}
    assert [r["valid_to"] for r in export["tax_rates.csv"] if r["country"] == "DE"] == ["2026-10-16", ""]
    services = {r["service"] for r in export["allocation_rules.csv"]}
    assert {"AmazonEC2", "AmazonS3", "AmazonRDS", "AWSDataTransfer"} <= services
    assert "AmazonCloudWatch" not in services


def test_unknown_plan_names_file_line_and_field(export):
    problems = _problems(export, "subscriptions.csv", lambda rows: rows[3].update(plan_id="gold-usd"))
    assert problems == ["subscriptions.csv, line 5, field plan_id: unknown plan gold-usd"]


def test_overlapping_tiers(export):
    def edit(rows):
        rows[1]["up_to"] = "900000"  # pro-usd llm_tokens tier 2 ends below tier 1's bound

    problems = _problems(export, "price_tiers.csv", edit)
    assert problems == [
        "price_tiers.csv, line 3, field up_to: overlapping tiers of pro-usd/llm_tokens: up_to 900000 is not"
        " above the previous tier's bound 1000000"
    ]


def test_bound_after_unbounded_tier(export):
    def edit(rows):
        rows.append(dict(rows[2], tier="4", up_to="99999999"))

    problems = _problems(export, "price_tiers.csv", edit)
    assert problems == [
        "price_tiers.csv, line 52, field up_to: tier 4 of pro-usd/llm_tokens comes after an unbounded tier"
    ]


def test_overlapping_tax_validity(export):
    problems = _problems(export, "tax_rates.csv", lambda rows: rows[1].update(valid_to="2026-10-20"))
    assert problems == [
        "tax_rates.csv, line 4, field valid_from: overlapping validity for country DE: 2026-10-16 is before"
        " the end of the period on line 3"
    ]


def test_negative_price_and_unknown_currency_and_enum_all_reported(export):
    rows = {k: [dict(r) for r in v] for k, v in export.items()}
    rows["price_components.csv"][0]["unit_price"] = "-0.1"
    rows["plans.csv"][0]["currency"] = "XXX"
    rows["quotas.csv"][0]["action"] = "throttle"
    _, problems = validate(_files(rows))
    assert sorted(str(p) for p in problems) == [
        "plans.csv, line 2, field currency: unknown currency XXX (not in seeds/currencies.csv)",
        "price_components.csv, line 2, field unit_price: must not be negative: -0.1",
        "quotas.csv, line 2, field action: unknown value 'throttle' (expected one of block, allow_with_overage)",
    ]


def test_overlapping_subscription_rows_and_missing_file(export):
    rows = {k: [dict(r) for r in v] for k, v in export.items()}
    first_change = next(
        i for i, r in enumerate(rows["subscriptions.csv"]) if r["ended_at"] and i + 1 < len(rows["subscriptions.csv"])
        and rows["subscriptions.csv"][i + 1]["subscription_id"] == r["subscription_id"]
    )  # fmt: skip
    rows["subscriptions.csv"][first_change]["ended_at"] = "2026-12-01T00:00:00Z"
    del rows["credits.csv"]
    _, problems = validate(_files(rows))
    messages = [str(p) for p in problems]
    assert messages[0] == "credits.csv: file missing from the export"
    assert len(messages) == 2
    assert messages[1].startswith(f"subscriptions.csv, line {first_change + 3}, field started_at: overlaps the row")


def test_bad_values_are_typed_errors(tmp_path: Path, export):
    rows = {k: [dict(r) for r in v] for k, v in export.items()}
    rows["tenants.csv"][0]["country"] = "USA"
    rows["credits.csv"][0]["created_at"] = "2026-10-01T00:00:00"
    rows["price_components.csv"][0]["unit_price"] = "1e-5"
    _, problems = validate(_files(rows))
    assert sorted(str(p) for p in problems) == [
        "credits.csv, line 2, field created_at: timestamp without a time zone (UTC expected, e.g. "
        "2025-03-15T00:00:00Z): '2026-10-01T00:00:00'",
        "price_components.csv, line 2, field unit_price: not a plain decimal: '1e-5'",
        "tenants.csv, line 2, field country: not a 2-letter code: 'USA'",
    ]


def test_generated_budgets_cover_tenants_and_services(export):
    budgets = export["budgets.csv"]
    assert [(b["scope_type"], b["scope_id"], b["currency"], b["thresholds"]) for b in budgets] == [
        ("tenant", "t-0001", "USD", "50|80|100"),
        ("tenant", "t-0002", "EUR", "80|100"),
        ("tenant", "t-0003", "EUR", "80|100"),
        ("service", "AmazonEC2", "USD", "80|100"),
        ("service", "AmazonS3", "USD", "80|100"),
    ]
    parsed, _ = validate(_files(export))
    assert parsed["budgets.csv"].rows[0]["thresholds"] == [Decimal(50), Decimal(80), Decimal(100)]


def test_bad_budgets_name_file_line_and_field(export):
    def edit(rows):
        rows[0]["scope_id"] = "t-9999"  # unknown tenant
        rows[1]["thresholds"] = "100|80|80"  # repeated
        rows[2]["scope_type"] = "team"
        rows[3]["currency"] = "XYZ"
        rows[4]["amount"] = "0"
        rows.append(dict(rows[4], budget_id="budget-t-0001", amount="10", thresholds="80|ten"))

    problems = _problems(export, "budgets.csv", edit)
    assert sorted(problems) == [
        "budgets.csv, line 2, field scope_id: unknown tenant t-9999",
        "budgets.csv, line 3, field thresholds: a threshold is repeated: '100|80|80'",
        "budgets.csv, line 4, field scope_type: unknown value 'team' (expected one of tenant, service)",
        "budgets.csv, line 5, field currency: unknown currency XYZ (not in seeds/currencies.csv)",
        "budgets.csv, line 6, field amount: must be positive: 0",
        "budgets.csv, line 7, field thresholds: not a plain decimal: 'ten'",
    ]


def test_budgets_file_is_optional_but_a_duplicate_budget_is_refused(export):
    rows = {k: [dict(r) for r in v] for k, v in export.items() if k != "budgets.csv"}
    assert validate(_files(rows))[1] == []
    problems = _problems(export, "budgets.csv", lambda rows: rows.append(dict(rows[0])))
    assert problems == ["budgets.csv, line 7, field budget_id: duplicate key budget-t-0001 (first on line 2)"]


@pytest.mark.parametrize("period", [date(1999, 1, 1), date(2018, 10, 1), date(2020, 1, 1), date(2031, 12, 1)])
def test_a_generated_catalog_is_valid_for_any_period(tmp_path: Path, period: date):
    files = generate_catalog(str(tmp_path), period=period).files
    _, problems = validate(_files(files))
    assert problems == []
    # Every country has exactly one tax rate on each day of the month, and the rules are in force.
    end = date(period.year + (period.month == 12), period.month % 12 + 1, 1)
    for country in {r["country"] for r in files["tenants.csv"]}:
        rates = [r for r in files["tax_rates.csv"] if r["country"] == country]
        for day in (period, date(period.year, period.month, 28)):
            in_force = [
                r for r in rates if date.fromisoformat(r["valid_from"]) <= day
                and (not r["valid_to"] or day < date.fromisoformat(r["valid_to"]))
            ]  # fmt: skip
            assert len(in_force) == 1, (country, day, rates)
    for rate in files["tax_rates.csv"]:
        assert not rate["valid_to"] or date.fromisoformat(rate["valid_from"]) < date.fromisoformat(rate["valid_to"])
    starts = [date.fromisoformat(r["started_at"][:10]) for r in files["subscriptions.csv"]]
    rules_from = {date.fromisoformat(r["valid_from"]) for r in files["allocation_rules.csv"]}
    assert max(rules_from) <= min(starts) < end
