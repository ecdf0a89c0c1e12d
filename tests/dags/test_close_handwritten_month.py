"""The monthly close through Airflow on a catalog written by hand (event types and metrics our
generators never use): every invoice issued exact to the cent, the documents and the report
written, and the same close from the command line decides the same way."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from meterline import airflow_env
from meterline.landing import Zone

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from handwritten_month import PERIOD, TOTALS

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_the_handwritten_month_closes_through_airflow(month_airflow, month_db, tmp_path):
    outbox = Zone(str(tmp_path / "outbox"))
    env = month_airflow | {"OUTBOX_URL": outbox.url}
    airflow_env.dags_test("close_billing_period", env, logical_date="2025-04-01T04:00:00+00:00")

    tasks = dict(
        month_db.execute(
            "select task_id, state from ops.pipeline_runs where dag_id = 'close_billing_period' and task_id <> ''"
        ).fetchall()
    )
    assert set(tasks.values()) == {"success"} and len(tasks) == 6
    issued = dict(month_db.execute("select tenant_id, total from billing.invoices where status = 'issued'"))
    assert issued == TOTALS
    # Numbered in the year they were issued (today's: an audit time), gap-free from 1.
    numbers = [n for (n,) in month_db.execute("select invoice_number from billing.invoices order by 1")]
    assert [n[-6:] for n in numbers] == ["000001", "000002", "000003"]
    assert [f.path for f in outbox.list("invoices")] == [
        f"invoices/{PERIOD}/{n}.{ext}" for n in numbers for ext in ("json", "pdf")
    ]
    assert outbox.exists(f"reports/{PERIOD}.html")
    assert month_db.execute(
        "select distinct status from marts.invoice_header where period_start = '2025-03-01'"
    ).fetchall() == [("issued",)]
