"""The data-quality suites as the gate reads them: what is stored per expectation, which drafts
an invoice-level failure names, and what happens when a table the suite needs is missing."""

from __future__ import annotations

import psycopg
import pytest
from handwritten_month import DRAFT, PERIOD

from meterline.invoicing.gate import evaluate_gate
from meterline.quality import GX_SUITES, run_suites

pytestmark = pytest.mark.integration


@pytest.fixture
def month(month_url: str) -> str:
    return month_url


@pytest.fixture
def db(month_db: psycopg.Connection) -> psycopg.Connection:
    return month_db


def test_every_expectation_is_stored_with_its_observed_value(month, db):
    run = run_suites(month, PERIOD, dbt_select=None)
    assert run.success and len(run.results) == 24
    stored = db.execute(
        "select suite, count(*), bool_and(success), min(scope), max(scope) from ops.dq_results"
        " where dq_run_id = %s group by suite order by suite",
        [run.dq_run_id],
    ).fetchall()
    assert stored == [
        ("events_rejected", 1, True, "period", "period"),
        ("fact_cost_allocated", 1, True, "period", "period"),
        ("freshness", 4, True, "period", "period"),
        ("invoice_coverage", 2, True, "period", "period"),
        ("invoice_drafts", 9, True, "invoice", "invoice"),
        ("usage_hourly", 7, True, "period", "period"),
    ]
    assert {s for s, *_ in stored} == set(GX_SUITES)
    observed = db.execute(
        "select observed_value, detail->>'expectation_type' from ops.dq_results"
        " where dq_run_id = %s and expectation = 'rejection_rate_under_threshold'",
        [run.dq_run_id],
    ).fetchone()
    assert observed == (
        {"unexpected_count": 0, "unexpected_percent": 0.0, "partial_unexpected_list": []},
        "expect_column_values_to_be_between",
    )


def test_invoice_level_failures_name_their_drafts(month, db):
    # What a broken pricing model would write: a total off by a cent, a tax off by one yen, an
    # unknown currency. The suite checks dbt's own columns, draft by draft.
    db.execute("update marts.invoice_drafts set total = total + 0.01 where tenant_id = 't-0001'")
    db.execute("update marts.invoice_drafts set tax = tax + 1, total = total + 1 where tenant_id = 't-0003'")
    db.execute("update marts.invoice_drafts set currency = 'XYZ' where tenant_id = 't-0002'")
    run = run_suites(month, PERIOD, suites=("invoice_drafts",), dbt_select=None)
    failing = {(r.expectation, r.scope, tuple(r.failing_keys)) for r in run.failures}
    assert failing == {
        ("totals_consistent", "invoice", (DRAFT["t-0001"],)),
        ("tax_is_rate_times_taxable", "invoice", (DRAFT["t-0003"],)),
        ("currency_valid", "invoice", (DRAFT["t-0002"],)),
    }
    stored = db.execute(
        "select failing_keys from ops.dq_results where dq_run_id = %s and expectation = 'currency_valid'",
        [run.dq_run_id],
    ).fetchone()
    assert stored == ([DRAFT["t-0002"]],)


def test_a_missing_table_fails_its_suite_instead_of_raising(month, db):
    db.execute("drop table marts.fact_cost_allocated")
    run = run_suites(month, PERIOD, suites=("fact_cost_allocated", "usage_hourly"), dbt_select=None)
    assert [(r.suite, r.expectation, r.success) for r in run.failures] == [
        ("fact_cost_allocated", "relation_present", False)
    ]
    assert run.failures[0].observed_value == {"missing": ["marts.fact_cost_allocated"]}
    decision = evaluate_gate(month, PERIOD, require_dbt=False)
    reasons = {c.name: c.reason for c in decision.period_failures}
    assert "missing marts.fact_cost_allocated" in reasons["dq.fact_cost_allocated.relation_present"]


def test_the_dbt_suite_fails_when_no_test_is_selected(month, db):
    run = run_suites(month, PERIOD, suites=(), dbt_select="no_such_model_anywhere")
    assert [(r.suite, r.expectation, r.success) for r in run.results] == [("dbt_billing", "tests_selected", False)]
