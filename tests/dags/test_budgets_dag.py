"""refresh_budgets runs in Airflow: rebuilds the status of the catalog's budgets as of the run's
day and posts each threshold crossed to the webhook of the `budget_webhook` connection (that
re-runs post nothing again is tested on send_alerts itself, in tests/integration/test_budgets.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from webhook import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from _gate_month import add_budgets

from meterline import airflow_env
from meterline.budgets.alerts import webhook_url

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_webhook_url_from_an_http_connection():
    assert webhook_url("127.0.0.1", schema="http", port=8080, endpoint="hooks/b") == "http://127.0.0.1:8080/hooks/b"
    assert webhook_url("https://hooks.example.com/services/T1/") == "https://hooks.example.com/services/T1"


def test_refresh_budgets_alerts_once(month_airflow, month_db):
    airflow, db = month_airflow, month_db
    add_budgets(db)
    hook = Webhook()
    try:
        connection = {"conn_type": "http", "host": "127.0.0.1", "schema": "http", "port": hook.server.server_port,
                      "extra": {"endpoint": "/hooks/budgets"}}  # fmt: skip
        env = {**airflow, "AIRFLOW_CONN_BUDGET_WEBHOOK": json.dumps(connection)}
        airflow_env.dags_test("refresh_budgets", env, logical_date="2025-03-10")
        assert [(b["budget_id"], b["threshold"]) for b in hook.received] == [
            ("b-acme", "80"),
            ("b-beta", "80"),
            ("b-beta", "100"),
            ("b-ec2", "50"),
        ]
    finally:
        hook.server.shutdown()
    assert db.execute("select count(*) from ops.budget_alerts").fetchone()[0] == 4
    counts = db.execute(
        "select task_id, counts from ops.pipeline_runs where dag_id = 'refresh_budgets' and task_id <> ''"
        " order by task_id"
    ).fetchall()
    assert counts == [
        ("refresh", {"budgets": 4, "ok": 1, "warning": 2, "breached": 1}),
        ("send_alerts", {"alerts_sent": 4, "alerts_pending": 0}),
    ]
    assert db.execute("select period_start::text from marts.budget_master limit 1").fetchone()[0] == "2025-03-01"
