"""The invoice gate on a real, dbt-built month (tests/handwritten_month.py): period-wide checks
block the whole period, invoice-level checks block their invoice only, overrides are audited,
and a fixed period emits on re-run. Breakages of a mart stand for a pipeline that went wrong;
breakages of raw data or the catalog are rebuilt through dbt, as the close would."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from _gate_month import add_budgets, fail_reconciliation
from handwritten_month import DRAFT, PERIOD, SUB, TOTALS, catalog_never_had
from psycopg import sql

from meterline import close
from meterline.budgets.refresh import refresh
from meterline.invoicing.emit import emit
from meterline.invoicing.gate import GateFailed, evaluate_gate, require_pass
from meterline.landing import Zone
from meterline.quality import run_suites

pytestmark = pytest.mark.integration


@pytest.fixture
def month(month_url: str) -> str:
    return month_url


@pytest.fixture
def db(month_db: psycopg.Connection) -> psycopg.Connection:
    return month_db


def gate(url: str, overrides: dict[str, str] | None = None):
    """The suites and the gate as the close runs them after its build (whose dbt tests count)."""
    run_suites(url, PERIOD, dbt_select=None)
    return evaluate_gate(url, PERIOD, overrides, actor="ops:alice")


def issued_totals(db: psycopg.Connection) -> dict[str, Decimal]:
    return dict(db.execute("select tenant_id, total from billing.invoices where status = 'issued'").fetchall())


def test_clean_month_passes_every_check(month, db):
    decision = gate(month)
    assert decision.passed
    assert decision.blocked_invoices == {}
    dbt_tests = db.execute("select count(*) from ops.dq_results where suite = 'dbt_billing' and success").fetchone()[0]
    rows = db.execute(
        "select count(*), bool_and(passed), count(distinct run_id) from ops.invoice_gate"
        " where period_start = '2025-03-01'"
    ).fetchone()
    # 24 expectations (usage 7, allocation 1, coverage 2, drafts 9, rejection 1, freshness 4),
    # every test of the close's dbt build, and reconciliation, pricing configuration,
    # plausibility and the content hash of the issued documents (none yet). No budgets at all:
    # budget freshness passes.
    assert dbt_tests > 50
    assert rows == (24 + dbt_tests + 4, True, 1)
    assert db.execute("select action from ops.audit_log where resource = 'period:2025-03'").fetchall() == [
        ("gate.passed",)
    ]
    # What the gate passed: the period's inputs and each draft's fingerprint.
    marks = db.execute("select watermarks from ops.invoice_gate_inputs where run_id = %s", [decision.run_id]).fetchone()
    assert marks[0]["events_loaded"] == 252 and marks[0]["events_rejected"] == 0 and marks[0]["event_files"] == 21
    assert db.execute(
        "select g.invoice_id, g.content_hash = d.content_hash from ops.invoice_gate_drafts g"
        " join marts.invoice_drafts d using (invoice_id) where g.run_id = %s order by 1",
        [decision.run_id],
    ).fetchall() == [(DRAFT[t], True) for t in sorted(DRAFT)]


def _duplicate_usage_key(db):
    # The built table's unique index would refuse it: a model that lost its key would not have one.
    for (index,) in db.execute(
        "select indexrelid::regclass::text from pg_index where indrelid = 'marts.usage_hourly'::regclass"
        " and indisunique"
    ).fetchall():
        db.execute(sql.SQL("drop index {}").format(sql.SQL(index)))  # regclass text: quoted already
    db.execute("insert into marts.usage_hourly select * from marts.usage_hourly limit 1")


def _negative_count(db):
    db.execute("update marts.usage_hourly set event_count = -1 where hour = '2025-03-15T08:00:00Z'")


def _stale_events(db):
    db.execute("delete from raw.events where \"timestamp\" > '2025-03-25'")


def _no_cur_delivery(db):
    db.execute("delete from raw.cur_deliveries")


def _rejections(db):
    # 252 accepted, 4 rejected in March: 1.5625 % > the 1 % threshold.
    db.execute(
        "insert into raw.events_rejected (source_file, checksum, line_no, reason, raw_record, partition_date)"
        " select 'events/day=2025-03-02/part-0.jsonl', 'abc', n, 'unknown event type', '{}', '2025-03-02'"
        " from generate_series(1, 4) as n"
    )


def _budgets_never_refreshed(db):
    add_budgets(db)  # in the catalog, but no refresh ever built marts.budget_master


def _allocation_leak(db):
    db.execute("update marts.fact_cost_allocated set allocated_cost = 29.06 where tenant_id = 't-0002'")


def _missing_draft(db):
    db.execute("delete from marts.invoice_drafts where tenant_id = 't-0002' and period_start = '2025-03-01'")


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
    (_rejections, "dq.events_rejected.rejection_rate_under_threshold", "1.5625"),
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
    catalog_never_had(db, "tax_rates", "country = %s", ["JP"])
    close.build(month, PERIOD)
    decision = gate(month)

    assert decision.passed
    assert list(decision.blocked_invoices) == [DRAFT["t-0003"]]
    reasons = decision.blocked_invoices[DRAFT["t-0003"]]
    assert any(
        r.startswith("pricing_configuration: no tax rate for country JP on 2025-03-31; see marts.") for r in reasons
    )
    assert "dq.invoice_drafts.tax_rate_present: draft fails tax_rate_present" in "; ".join(reasons)
    rows = db.execute(
        "select check_name from ops.invoice_gate where run_id = %s and invoice_id = %s and not passed order by 1",
        [decision.run_id, DRAFT["t-0003"]],
    ).fetchall()
    assert ("pricing_configuration",) in rows and ("dq.invoice_drafts.tax_rate_present",) in rows

    outbox = str(tmp_path / "outbox")
    first = emit(month, PERIOD, outbox)
    assert sorted(first.blocked) == [DRAFT["t-0003"]]
    assert issued_totals(db) == {"t-0001": TOTALS["t-0001"], "t-0002": TOTALS["t-0002"]}
    assert len(Zone(outbox).list("invoices/2025-03")) == 4

    db.execute(
        "insert into raw.catalog_tax_rates (country, rate, valid_from, source_file)"
        " values ('JP', 0.10, '2024-01-01', 'tax_rates.csv')"
    )
    close.build(month, PERIOD)
    assert gate(month).blocked_invoices == {}
    second = emit(month, PERIOD, outbox)
    assert len(second.issued) == 1 and sorted(second.already_issued) == [DRAFT["t-0001"], DRAFT["t-0002"]]
    assert issued_totals(db) == TOTALS
    assert len(Zone(outbox).list("invoices/2025-03")) == 6


def test_missing_price_blocks_only_that_invoice_with_dbts_reason(month, db, tmp_path):
    catalog_never_had(db, "price_components", "plan_id = %s", ["team-usd"])
    close.build(month, PERIOD)
    decision = gate(month)

    assert decision.passed
    reasons = decision.blocked_invoices[DRAFT["t-0001"]]
    assert list(decision.blocked_invoices) == [DRAFT["t-0001"]]
    assert any(r.startswith("pricing_configuration: no price for metric chat_tokens on plan team-usd") for r in reasons)

    result = emit(month, PERIOD, str(tmp_path / "outbox"))
    assert len(result.issued) == 2
    assert issued_totals(db) == {"t-0002": TOTALS["t-0002"], "t-0003": TOTALS["t-0003"]}


def test_a_blocked_draft_shows_the_gates_reasons_until_the_next_gate_releases_it(month, db):
    catalog_never_had(db, "tax_rates", "country = %s", ["JP"])
    close.build(month, PERIOD)
    first = gate(month)
    assert list(first.blocked_invoices) == [DRAFT["t-0003"]]
    db.execute(
        "insert into raw.catalog_tax_rates (country, rate, valid_from, source_file)"
        " values ('JP', 0.10, '2024-01-01', 'tax_rates.csv')"
    )
    close.build(month, PERIOD)
    status = "select status, blocked_reason from marts.invoice_header where invoice_id = %s"
    shown = db.execute(status, [DRAFT["t-0003"]]).fetchone()
    assert shown[0] == "blocked" and shown[1].startswith("gate: dq.invoice_drafts.")  # the last decision's reasons
    assert gate(month).blocked_invoices == {}
    assert db.execute(status, [DRAFT["t-0003"]]).fetchone() == ("open", None)


def test_an_implausible_draft_is_held_for_review_and_the_others_go_out(month, db, tmp_path):
    """One event of 1e308 tokens (loaded before quantities were bounded): the draft cannot be
    represented (its overage line above the 2,000,000-token quota: 1e308 x 0.00004 = 4e303 USD);
    it is blocked on its own with the reason."""
    db.execute(
        'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties, "timestamp",'
        " source_file, line_no, partition_date) values (gen_random_uuid(), 'huge-1', %s, 'chat.message',"
        " '{\"tokens\": 1e308}', '2025-03-20T10:00:00Z', 'events/huge.jsonl', 1, '2025-03-20')",
        [SUB["t-0001"]],
    )
    close.build(month, PERIOD)
    decision = gate(month)
    assert decision.passed
    assert list(decision.blocked_invoices) == [DRAFT["t-0001"]]
    assert decision.blocked_invoices[DRAFT["t-0001"]][0].startswith(
        "plausibility: held for review: a figure cannot be represented exactly (largest amount 4.000e+303 USD"
    )
    result = emit(month, PERIOD, str(tmp_path / "outbox"))
    assert result.complete and len(result.issued) == 2 and list(result.blocked) == [DRAFT["t-0001"]]
    assert issued_totals(db) == {"t-0002": TOTALS["t-0002"], "t-0003": TOTALS["t-0003"]}


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
        evaluate_gate(month, PERIOD, {"reconcilation": "typo"})
    with pytest.raises(ValueError, match="needs a justification"):
        evaluate_gate(month, PERIOD, {"reconciliation": "  "})


def test_gate_without_suite_results_blocks_with_what_to_run(month, db):
    db.execute("delete from ops.dq_results")
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
