"""ingest_payments runs in Airflow: loads the exports, marks covered invoices paid, records the
counts; a second run changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_payments import INVOICES, VOID, issue

from meterline import airflow_env
from meterline.synthetic.payments import generate_payments

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_ingest_payments_loads_once_and_records_its_counts(airflow, db, warehouse_url, tmp_path):
    for row in INVOICES:
        issue(db, *row)
    issue(db, *VOID, void=True)
    landing = str(tmp_path / "landing")
    generate_payments(warehouse_url, landing, "2025-03")
    env = {**airflow, "LANDING_URL": landing}

    done = airflow_env.dags_test("ingest_payments", env, logical_date="2025-04-09")
    output = done.stdout + done.stderr
    assert (
        "payments: 3 files read, 0 skipped; 14 rows, 9 loaded, 5 duplicates, 0 rejected; 4 invoices paid;"
        " 4 mismatches (refund 1, underpaid 2, unknown_invoice 1), 1 resolved" in output
    )
    assert db.execute("select count(*) from billing.invoices where status = 'paid'").fetchone()[0] == 4
    assert db.execute(
        "select actor, count(*) from ops.audit_log where action = 'invoice.paid' group by 1"
    ).fetchall() == [("airflow:ingest_payments", 4)]
    counts = db.execute(
        "select counts from ops.pipeline_runs where dag_id = 'ingest_payments' and task_id = 'load_exports'"
    ).fetchone()[0]
    assert {k: counts[k] for k in ("rows_loaded", "duplicates", "invoices_paid", "mismatches")} == {
        "rows_loaded": 9,
        "duplicates": 5,
        "invoices_paid": 4,
        "mismatches": 4,
    }

    again = airflow_env.dags_test("ingest_payments", env, logical_date="2025-04-10")
    assert "payments: 0 files read, 3 skipped; 0 rows, 0 loaded" in again.stdout + again.stderr
    assert db.execute("select count(*) from billing.payment_txn").fetchone()[0] == 9
