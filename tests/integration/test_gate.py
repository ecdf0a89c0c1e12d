"""The invoice gate on a real warehouse: period-wide checks block the whole period, invoice-level
checks block their invoice only, overrides are audited, and a fixed period emits on re-run."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from _gate_month import DRAFT, PERIOD, TOTALS, add_budgets, build, fail_reconciliation

from meterline.budgets.refresh import refresh
from meterline.invoicing.emit import emit
from meterline.invoicing.gate import GateFailed, evaluate_gate, require_pass
from meterline.landing import Zone
from meterline.quality import run_suites

pytestmark = pytest.mark.integration


@pytest.fixture
def month(db: psycopg.Connection, warehouse_url: str) -> str:
    build(db)
    return warehouse_url


def gate(url: str, overrides: dict[str, str] | None = None):
    run_suites(url, PERIOD, dbt_select=None)
    return evaluate_gate(url, PERIOD, overrides, actor="ops:alice", require_dbt=False)


def issued_totals(db: psycopg.Connection) -> dict[str, Decimal]:
    return dict(db.execute("select tenant_id, total from billing.invoices where status = 'issued'").fetchall())


def test_clean_month_passes_every_check(month, db):
    decision = gate(month)
    assert decision.passed
    assert decision.blocked_invoices == {}
    rows = db.execute(
        "select count(*), bool_and(passed), count(distinct run_id) from ops.invoice_gate"
        " where period_start = '2025-03-01'"
    ).fetchone()
    # 24 expectations (usage 7, allocation 2, coverage 2, drafts 8, rejection 1, freshness 4)
    # + reconciliation + pricing configuration + content hash of the issued documents (none yet).
    # No budgets at all: budget freshness passes.
    assert rows == (27, True, 1)
    assert db.execute("select action from ops.audit_log where resource = 'period:2025-03'").fetchall() == [
        ("gate.passed",)
    ]


def _duplicate_usage_key(db):
    db.execute("insert into marts.usage_hourly select * from marts.usage_hourly limit 1")


def _negative_count(db):
    db.execute("update marts.usage_hourly set event_count = -1 where hour = '2025-03-15T08:00:00Z'")


def _stale_events(db):
    db.execute("delete from raw.events where \"timestamp\" > '2025-03-25'")


def _no_cur_delivery(db):
    db.execute("delete from raw.cur_deliveries")


def _rejections(db):
    # 4 accepted, 1 rejected in March: 20 % > the 1 % threshold.
    db.execute(
        "insert into raw.events_rejected (source_file, checksum, line_no, reason, raw_record, partition_date)"
        " values ('events/day=2025-03-02/part-0.jsonl', 'abc', 7, 'unknown event type', '{}', '2025-03-02')"
    )


def _budgets_never_refreshed(db):
    add_budgets(db)  # in the catalog, but no refresh ever built marts.budget_master


def _allocation_leak(db):
    db.execute("update marts.fact_cost_allocated set allocated_cost = 29.06 where tenant_id = 't-0002'")


def _missing_draft(db):
    db.execute("delete from marts.invoice_header where tenant_id = 't-0002'")


PERIOD_FAILURES = [
    (fail_reconciliation, "reconciliation", "AmazonS3 variance 1.5 %"),
    (_duplicate_usage_key, "dq.usage_hourly.keys_unique", "usage_hourly keys_unique failed"),
    (_negative_count, "dq.usage_hourly.event_count_non_negative", '"unexpected_count": 1'),
    (_stale_events, "dq.freshness.events_through_period_end", "freshness events_through_period_end failed"),
    (_no_cur_delivery, "dq.freshness.cur_delivery_for_period", "freshness cur_delivery_for_period failed"),
    (
        _budgets_never_refreshed,
        "dq.freshness.budgets_refreshed_within_24h",
        "stale budget data (older than 24 h when the suites ran): b-acme: never refreshed (not in"
        " marts.budget_master); b-beta: never refreshed (not in marts.budget_master); b-ec2: never refreshed",
    ),
    (_rejections, "dq.events_rejected.rejection_rate_under_threshold", "20.0000"),
    (_allocation_leak, "dq.fact_cost_allocated.conservation_per_service", '"1.003456"'),
    (_missing_draft, "dq.invoice_coverage.one_invoice_per_active_subscription", '"unexpected_count": 1'),
]


@pytest.mark.parametrize(("breakage", "check", "evidence"), PERIOD_FAILURES, ids=[c for _, c, _ in PERIOD_FAILURES])
def test_a_failing_period_check_blocks_the_whole_period(month, db, tmp_path: Path, breakage, check, evidence):
    breakage(db)
    decision = gate(month)

    assert not decision.passed
    assert [c.name for c in decision.period_failures] == [check]
    reason = db.execute(
        "select reason from ops.invoice_gate where run_id = %s and check_name = %s and not passed and not overridden",
        [decision.run_id, check],
    ).fetchone()[0]
    assert evidence in reason
    with pytest.raises(GateFailed) as failed:
        require_pass(decision)
    assert check in str(failed.value) and "nothing is emitted" in str(failed.value)
    assert db.execute("select action from ops.audit_log where resource = 'period:2025-03'").fetchall() == [
        ("gate.blocked",)
    ]

    outbox = tmp_path / "outbox"
    with pytest.raises(GateFailed, match="blocks the period"):
        emit(month, PERIOD, str(outbox))
    assert db.execute("select count(*) from billing.invoices").fetchone() == (0,)
    assert db.execute("select count(*) from billing.invoice_line_items").fetchone() == (0,)
    assert db.execute("select count(*) from ops.audit_log where action = 'invoice.issued'").fetchone() == (0,)
    assert Zone(str(outbox)).list() == []


def test_emit_without_a_gate_run_refuses(month, db, tmp_path):
    with pytest.raises(GateFailed, match="no gate run for 2025-03"):
        emit(month, PERIOD, str(tmp_path / "outbox"))
    assert db.execute("select count(*) from billing.invoices").fetchone() == (0,)


def test_missing_tax_rate_blocks_only_that_invoice_and_a_rerun_after_the_fix_emits_it(month, db, tmp_path):
    db.execute("delete from raw.catalog_tax_rates where country = 'JP'")
    decision = gate(month)

    assert decision.passed
    assert list(decision.blocked_invoices) == [DRAFT["t-0003"]]
    assert "tax_rate_present" in decision.blocked_invoices[DRAFT["t-0003"]][0]
    row = db.execute(
        "select check_name, scope, passed from ops.invoice_gate where run_id = %s and invoice_id = %s",
        [decision.run_id, DRAFT["t-0003"]],
    ).fetchall()
    assert row == [("dq.invoice_drafts.tax_rate_present", "invoice", False)]

    outbox = str(tmp_path / "outbox")
    first = emit(month, PERIOD, outbox)
    assert sorted(first.blocked) == [DRAFT["t-0003"]]
    assert issued_totals(db) == {"t-0001": TOTALS["t-0001"], "t-0002": TOTALS["t-0002"]}
    assert len(Zone(outbox).list("invoices/2025-03")) == 4

    db.execute(
        "insert into raw.catalog_tax_rates (country, rate, valid_from, source_file)"
        " values ('JP', 0.10, '2024-01-01', 'tax_rates.csv')"
    )
    assert gate(month).blocked_invoices == {}
    second = emit(month, PERIOD, outbox)
    assert len(second.issued) == 1 and sorted(second.already_issued) == [DRAFT["t-0001"], DRAFT["t-0002"]]
    assert issued_totals(db) == TOTALS
    assert len(Zone(outbox).list("invoices/2025-03")) == 6


def _price_missing(db):
    """What dbt writes for a metric without a price: a blocked draft, no amount, never a zero."""
    db.execute(
        "update marts.invoice_header set status = 'blocked', subtotal = null, tax = null, total = null,"
        " blocked_reason = 'no price for metric llm_tokens on plan plan-usd' where tenant_id = 't-0001'"
    )
    db.execute(
        "update marts.invoice_draft_lines set unit_price = null, amount = null"
        " where invoice_id = %s and metric_code = 'llm_tokens'",
        [DRAFT["t-0001"]],
    )


def test_missing_price_blocks_only_that_invoice_with_dbts_reason(month, db, tmp_path):
    _price_missing(db)
    decision = gate(month)

    assert decision.passed
    reasons = decision.blocked_invoices[DRAFT["t-0001"]]
    assert list(decision.blocked_invoices) == [DRAFT["t-0001"]]
    assert any(r.startswith("pricing_configuration: no price for metric llm_tokens on plan plan-usd") for r in reasons)
    assert any(r.startswith("dq.invoice_drafts.prices_present") for r in reasons)

    result = emit(month, PERIOD, str(tmp_path / "outbox"))
    assert len(result.issued) == 2
    assert issued_totals(db) == {"t-0002": TOTALS["t-0002"], "t-0003": TOTALS["t-0003"]}


def test_reasons_the_gate_wrote_do_not_block_again_once_fixed(month, db):
    """invoice_header shows the previous gate run's reasons; they must not read as dbt's."""
    db.execute("delete from raw.catalog_tax_rates where country = 'JP'")
    first = gate(month)
    shown = "; ".join(f"{c.name}: {c.reason}" for c in first.checks if c.invoice_id == DRAFT["t-0003"])
    db.execute(
        "insert into raw.catalog_tax_rates (country, rate, valid_from, source_file)"
        " values ('JP', 0.10, '2024-01-01', 'tax_rates.csv')"
    )
    db.execute(
        "update marts.invoice_header set status = 'blocked', blocked_reason = %s where invoice_id = %s",
        [shown, DRAFT["t-0003"]],
    )
    assert gate(month).blocked_invoices == {}


def test_override_lets_the_period_through_and_is_audited(month, db, tmp_path):
    fail_reconciliation(db)
    justification = "S3 variance is the AWS credit memo of 2025-04-02, ticket FIN-42"
    decision = gate(month, {"reconciliation": justification})

    assert decision.passed
    row = db.execute(
        "select passed, overridden, reason from ops.invoice_gate where run_id = %s and check_name = 'reconciliation'",
        [decision.run_id],
    ).fetchone()
    assert row[0] is False and row[1] is True
    assert "overridden by ops:alice: " + justification in row[2]
    audit_row = db.execute(
        "select actor, resource, metadata from ops.audit_log where action = 'gate.check_overridden'"
    ).fetchone()
    assert audit_row[0] == "ops:alice" and audit_row[1] == "period:2025-03"
    assert audit_row[2]["check_name"] == "reconciliation" and audit_row[2]["justification"] == justification
    assert audit_row[2]["run_id"] == decision.run_id

    result = emit(month, PERIOD, str(tmp_path / "outbox"))
    assert len(result.issued) == 3
    # The override is for that run: a new run without it blocks again.
    assert not gate(month).passed


def test_override_needs_a_known_check_and_a_justification(month):
    run_suites(month, PERIOD, dbt_select=None)
    with pytest.raises(ValueError, match="names no check"):
        evaluate_gate(month, PERIOD, {"reconcilation": "typo"}, require_dbt=False)
    with pytest.raises(ValueError, match="needs a justification"):
        evaluate_gate(month, PERIOD, {"reconciliation": "  "}, require_dbt=False)


def test_gate_without_suite_results_blocks_with_what_to_run(month, db):
    decision = evaluate_gate(month, PERIOD, require_dbt=True)
    names = {c.name for c in decision.period_failures}
    assert "dq.dbt_billing" in names and "dq.usage_hourly" in names
    assert "meterline quality --period 2025-03" in decision.summary()


def test_stale_budget_data_blocks_the_period_until_refreshed(month, db):
    add_budgets(db)
    refresh(month, date(2025, 3, 10))
    fresh = gate(month)
    assert fresh.passed
    check = "dq.freshness.budgets_refreshed_within_24h"
    assert [(c.scope, c.passed) for c in fresh.checks if c.name == check] == [("period", True)]

    # Two budgets were last refreshed 25 h before the suites run: the whole period is blocked.
    db.execute(
        "update marts.budget_master set last_refreshed_at = now() - interval '25 hours'"
        " where budget_id in ('b-acme', 'b-ec2')"
    )
    (stale_at,) = db.execute(
        "select to_char(last_refreshed_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') from marts.budget_master"
        " where budget_id = 'b-acme'"
    ).fetchone()
    stale = gate(month)
    assert not stale.passed
    assert [c.name for c in stale.period_failures] == [check]
    reason = db.execute(
        "select reason from ops.invoice_gate where run_id = %s and check_name = %s and not passed",
        [stale.run_id, check],
    ).fetchone()[0]
    assert reason.startswith(
        f"freshness budgets_refreshed_within_24h failed; stale budget data (older than 24 h when the suites ran):"
        f" b-acme: last refreshed {stale_at} UTC, 25.0 h ago; b-ec2: last refreshed {stale_at} UTC, 25.0 h ago;"
        " refresh it (DAG refresh_budgets, or meterline budgets refresh) and run the suites again;"
    )
    assert "see ops.dq_results where dq_run_id = 'dq-2025-03-" in reason
    assert check in stale.summary()

    # The daily refresh runs again: fresh budget data, the period passes.
    refresh(month, date(2025, 3, 11))
    again = gate(month)
    assert again.passed and again.blocked_invoices == {}
