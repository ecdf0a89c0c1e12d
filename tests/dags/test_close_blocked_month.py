"""A month the gate blocks, closed through Airflow: the run fails, the decision and its reasons are
recorded, nothing is issued, the drafts show as blocked with the reasons, and the close report is
written anyway and says why.

The month is the end-to-end test's small month (6 tenants, 200 events a day), loaded with the
loaders directly; only the close runs in Airflow. The trigger is real noise: the events generator
rejects a fixed handful of rows a day, 3.4 % of this month, over the 1 % the gate accepts by
default. budgets.csv is left out of the catalog (it is optional) so no other check can fail.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from meterline import airflow_env
from meterline.catalog.load import load_catalog
from meterline.cur.load import run as load_cur
from meterline.events.load import load_partition
from meterline.landing import Zone
from meterline.synthetic.catalog import generate_catalog
from meterline.synthetic.cur import generate as generate_cur
from meterline.synthetic.events import generate as generate_events

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

PERIOD = date(2026, 10, 1)
DAYS = 31
CHECK = "dq.events_rejected.rejection_rate_under_threshold"


@pytest.fixture
def blocked_month(tmp_path, warehouse_url):
    landing_url, outbox_url = str(tmp_path / "landing"), str(tmp_path / "outbox")
    zone = Zone(landing_url)
    cur = generate_cur(zone, start=PERIOD, months=1, rows=3_000, deliveries=2, tenants=6)[0]
    generate_catalog(
        landing_url,
        tenants=6,
        subscriptions=8,
        period=PERIOD,
        aws_invoice_totals={"2026-10": (cur.decimal("billed"), "USD")},
    )
    (tmp_path / "landing" / "catalog" / "budgets.csv").unlink()
    events = generate_events(landing_url, PERIOD, DAYS, events_per_day=200, files_per_day=2)
    load_catalog(warehouse_url, landing_url)
    assert not load_cur(warehouse_url, landing_url).failed
    for i in range(DAYS):
        assert not load_partition(
            PERIOD + timedelta(days=i), landing_url=landing_url, conninfo=warehouse_url
        ).unreadable
    return {"landing": landing_url, "outbox": Zone(outbox_url), "events": events}


@pytest.mark.timeout(900)
def test_a_blocked_month_fails_the_close_issues_nothing_and_reports_why(airflow, db, blocked_month):
    env = airflow | {"LANDING_URL": blocked_month["landing"], "OUTBOX_URL": blocked_month["outbox"].url}
    close_at = f"{PERIOD + timedelta(days=DAYS)}T04:00:00+00:00"

    with pytest.raises(RuntimeError, match="did not succeed") as failed:
        airflow_env.dags_test("close_billing_period", env, logical_date=close_at, conf={"period": "2026-10"})
    assert str(failed.value).endswith("DagRun failed")
    # The gate failed the run: every step before it succeeded (the listener's records say which).
    tasks = dict(
        db.execute(
            "select task_id, state from ops.pipeline_runs where dag_id = 'close_billing_period' and task_id <> ''"
        ).fetchall()
    )
    errors = db.execute("select task_id, error from ops.pipeline_runs where state = 'failed'").fetchall()
    assert tasks == {
        "resolve_period": "success", "build": "success", "run_suites": "success", "gate": "failed",
        "report": "success",
    }, (errors, str(failed.value))  # fmt: skip

    # The rate the gate saw is the generator's: rejected / (accepted + rejected) over the month.
    manifest = blocked_month["events"].manifest
    accepted, rejected = manifest["accepted_distinct_events"], manifest["totals"]["rejected"]
    assert (accepted, rejected) == tuple(
        db.execute("select (select count(*) from raw.events), (select count(*) from raw.events_rejected)").fetchone()
    )
    rate = round(Decimal(100 * rejected) / Decimal(accepted + rejected), 4)
    assert rate > 1

    # The decision: one gate run, every check recorded, exactly one failing, with its reason.
    (run_id,) = db.execute("select distinct run_id from ops.invoice_gate where period_start = %s", [PERIOD]).fetchone()
    failing = db.execute(
        "select check_name, scope, overridden, reason from ops.invoice_gate where run_id = %s and not passed",
        [run_id],
    ).fetchall()
    (dq_run_id,) = db.execute(
        "select dq_run_id from ops.dq_results where suite = 'events_rejected' and period_start = %s",
        [PERIOD],
    ).fetchone()
    where = f"ops.dq_results where dq_run_id = '{dq_run_id}' and expectation = 'rejection_rate_under_threshold'"
    assert len(failing) == 1
    name, scope, overridden, reason = failing[0]
    assert (name, scope, overridden) == (CHECK, "period", False)
    assert reason.startswith("events_rejected rejection_rate_under_threshold failed;")
    assert reason.endswith(f"; see {where}")
    assert str(rate) in reason or f"{float(rate)}" in reason, reason
    passed = db.execute("select count(*) from ops.invoice_gate where run_id = %s and passed", [run_id]).fetchone()
    assert passed[0] >= 10
    audit = db.execute(
        "select action, metadata->'period_failures' from ops.audit_log where resource = 'period:2026-10'"
    ).fetchall()
    assert audit == [("gate.blocked", [CHECK])]

    # Nothing left: no invoice, no document.
    assert db.execute("select count(*) from billing.invoices").fetchone()[0] == 0
    assert blocked_month["outbox"].list("invoices") == []

    # Every draft is blocked, and says why.
    drafts = db.execute(
        "select status, blocked_reason from marts.invoice_header where period_start = %s", [PERIOD]
    ).fetchall()
    assert len(drafts) == 8
    assert {status for status, _ in drafts} == {"blocked"}
    assert all(CHECK in (blocked_reason or "") for _, blocked_reason in drafts), drafts

    # The run itself is recorded failed; the report, a teardown, was still written.
    runs = db.execute(
        "select state from ops.pipeline_runs where dag_id = 'close_billing_period' and task_id = ''"
    ).fetchall()
    assert runs == [("failed",)]

    report = blocked_month["outbox"].read_bytes("reports/2026-10.html").decode()
    assert "Monthly close: October 2026" in report
    assert "0 issued" in report and "8 blocked" in report
    assert CHECK in report and dq_run_id in report
