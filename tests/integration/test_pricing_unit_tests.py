"""The pricing scenarios written as dbt unit tests (given / expect) all run and pass, in one
dbt invocation, on the real warehouse."""

from __future__ import annotations

import json

import pytest
from _billing_month import BILLING_SELECTION, EXCLUDE, USAGE_DDL

from meterline import transform

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIOS = {
    "proration_start_on_15th_end_mid_month_and_plan_change",
    "price_models_tier_boundaries_and_zero_usage",
    "quota_reached_exceeded_blocked_and_across_plan_change",
    "base_fee_minimum_commitment_and_jpy_rounding",
    "tax_in_two_countries_rate_change_and_missing_rate",
    "credits_capped_at_each_invoice_and_carried_forward",
    "header_tax_rounding_status_from_issued_and_gate",
}


def test_every_pricing_unit_test_passes(warehouse_url, db):
    db.execute(USAGE_DDL)
    # One dbt build: each model's unit tests run right after its parents exist (dbt reads the
    # inputs' column types from the warehouse), before the model itself is built.
    done = transform.run(
        ["build", *BILLING_SELECTION, "--exclude", *EXCLUDE], warehouse_url, capture_output=True, text=True, check=False
    )
    results = json.loads((transform.target_dir() / "run_results.json").read_text())["results"]
    unit = {r["unique_id"].split(".")[-1]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert unit == dict.fromkeys(SCENARIOS, "pass"), done.stdout[-3000:]
    assert done.returncode == 0, done.stdout[-3000:]
