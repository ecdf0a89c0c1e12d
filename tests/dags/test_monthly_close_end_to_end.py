"""A small generated month through every DAG, in Airflow, against a fresh warehouse database:
catalog sync, CUR ingest, one events run per day, the nightly transform, then the monthly close.
The outcome is checked against what the generators say they wrote, not against our own SQL."""

from __future__ import annotations

from datetime import date

import pytest

from meterline import airflow_env
from meterline.landing import Zone
from meterline.synthetic.catalog import generate_catalog
from meterline.synthetic.cur import generate as generate_cur
from meterline.synthetic.events import generate as generate_events

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

PERIOD = date(2026, 10, 1)
DAYS = 31


@pytest.fixture
def month(tmp_path, monkeypatch):
    landing_url, outbox_url = str(tmp_path / "landing"), str(tmp_path / "outbox")
    monkeypatch.setenv("LANDING_URL", landing_url)
    monkeypatch.setenv("OUTBOX_URL", outbox_url)
    zone = Zone(landing_url)
    cur = generate_cur(zone, start=PERIOD, months=1, rows=3_000, deliveries=2, tenants=6)[0]
    total = cur.decimal("billed")  # what AWS invoices: net of discounts where they apply
    generate_catalog(
        landing_url, tenants=6, subscriptions=8, period=PERIOD, aws_invoice_totals={"2026-10": (total, "USD")}
    )
    events = generate_events(landing_url, PERIOD, DAYS, events_per_day=200, files_per_day=2)
    return {"landing": landing_url, "outbox": Zone(outbox_url), "cur_total": total, "events": events}


@pytest.mark.timeout(1800)  # ~45 Airflow runs and ~45 dbt invocations: minutes on a busy 2-core machine
def test_a_month_closes_end_to_end_through_airflow(airflow, db, month):
    # The generator adds a fixed amount of noise per day: 3.4 % of this small month's 200 events a
    # day are rejected, over the 1 % default the gate enforces (the demo's 20,000 a day stay under).
    env = airflow | {"LANDING_URL": month["landing"], "OUTBOX_URL": month["outbox"].url, "EVENT_REJECTION_PCT": "5"}
    plan = airflow_env.month_plan(PERIOD, DAYS)
    runs = airflow_env.run_plan(plan, env)
    assert [state for _, _, state in runs] == ["success"] * len(plan)

    # Cost: the final CUR delivery landed whole, allocated to the cent, and matches the AWS total.
    raw, allocated = db.execute(
        "select sum(raw_cost_exact), sum(allocated_cost) - sum(raw_cost) from marts.recon_summary"
        " where period_start = %s",
        [PERIOD],
    ).fetchone()
    assert raw == month["cur_total"]
    assert allocated == 0
    statuses = db.execute("select distinct status from marts.recon_summary where period_start = %s", [PERIOD])
    assert [s for (s,) in statuses] == ["ok"]
    invoice_exceptions = db.execute("select count(*) from marts.recon_exceptions where category = 'Invoice'")
    assert invoice_exceptions.fetchone()[0] == 0

    # Invoices: every open draft was issued once, with its totals, and its JSON and PDF written.
    drafts = db.execute(
        "select subscription_id, total from marts.invoice_header"
        " where period_start = %s and status in ('issued', 'open')",
        [PERIOD],
    ).fetchall()
    issued = db.execute(
        "select subscription_id, total, invoice_number from billing.invoices"
        " where period_start = %s and status = 'issued'",
        [PERIOD],
    ).fetchall()
    assert sorted((s, t) for s, t, _ in issued) == sorted(drafts)
    header = db.execute("select distinct status from marts.invoice_header where period_start = %s", [PERIOD])
    assert [s for (s,) in header] == ["issued"]  # rebuilt after emission
    assert len(issued) >= 6
    documents = {f.path for f in month["outbox"].list("invoices/2026-10")}
    for _, _, number in issued:
        assert {f"invoices/2026-10/{number}.json", f"invoices/2026-10/{number}.pdf"} <= documents

    # The close report: written, with the headline and every chart drawn from data.
    report = month["outbox"].read_bytes("reports/2026-10.html").decode()
    assert "Monthly close: October 2026" in report
    for chart in ("daily_usage", "cost_by_service", "allocated_vs_quarantined", "margin_by_tenant"):
        section = report.split(f'id="chart-{chart}"')[1].split("</figure>")[0]
        assert "<svg" in section, f"chart {chart} has no data"

    # Every run and task was recorded by the listener, with the loaders' counts.
    states = dict(
        db.execute(
            "select dag_id, count(*) filter (where state = 'success') from ops.pipeline_runs"
            " where task_id = '' group by 1"
        ).fetchall()
    )
    assert states == {
        "sync_billing_catalog": 1, "ingest_aws_cur": 1, "ingest_usage_events": DAYS,
        "transform_warehouse": 1, "refresh_budgets": 1, "close_billing_period": 1,
    }  # fmt: skip
    budgets = db.execute(
        "select passed from ops.invoice_gate where check_name = 'dq.freshness.budgets_refreshed_within_24h'"
    ).fetchall()
    assert budgets == [(True,)]

    # Re-running the close for the same period issues nothing new and changes no issued invoice.
    before = db.execute("select invoice_id, content_hash from billing.invoices order by 1").fetchall()
    airflow_env.run_plan([plan[-1]], env)
    assert db.execute("select invoice_id, content_hash from billing.invoices order by 1").fetchall() == before
