"""The correct_invoice DAG applies a correction in Airflow, with params, on a real warehouse."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from meterline import airflow_env
from meterline.invoicing.emit import emit

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from handwritten_month import PERIOD

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_credit_note_through_the_dag(gated_month_airflow, gated_month_url, gated_month_db, tmp_path):
    # The month after the suites and a gate that passed (handwritten_month.pass_gate).
    airflow, warehouse_url, db = gated_month_airflow, gated_month_url, gated_month_db
    outbox = tmp_path / "outbox"
    emit(warehouse_url, PERIOD, str(outbox), issued_at=datetime(2025, 4, 2, tzinfo=UTC))
    env = airflow | {"OUTBOX_URL": str(outbox)}

    conf = {"action": "credit_note", "invoice_number": "INV-2025-000002", "amount": "50", "reason": "SLA breach",
            "actor": "ops:carol"}  # fmt: skip
    airflow_env.dags_test("correct_invoice", env, conf=conf)
    note = db.execute("select credit_note_number, total, created_by from billing.credit_notes").fetchall()
    number = note[0][0]
    assert note == [(number, Decimal("-59.50"), "ops:carol")]
    assert (outbox / "credit_notes" / "2025-03" / f"{number}.pdf").exists()
    assert db.execute("select actor, resource from ops.audit_log where action = 'credit_note.issued'").fetchall() == [
        ("ops:carol", f"credit_note:{number}")
    ]
