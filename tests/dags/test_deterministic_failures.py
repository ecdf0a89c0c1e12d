"""A deterministic failure inside a DAG task (an amount of NaN, a period that is not a month, an
event file that is not gzip) fails the task at once, without its retries, and the failure names
the input and the reason."""

from __future__ import annotations

import json
import subprocess

import pytest
from webhook import Webhook

from meterline import airflow_env

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def dags_test(env: dict[str, str], dag_id: str, conf: dict, *logical_date: str) -> str:
    done = subprocess.run(
        [airflow_env.airflow_executable(), "dags", "test", dag_id, *logical_date, "--conf", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("dag_id", "conf", "task_id", "message"),
    [
        (
            "correct_invoice",
            {"action": "credit", "tenant_id": "t-0001", "amount": "NaN", "reason": "r", "actor": "ops:ann"},
            "apply_correction",
            "amount 'NaN' is not a finite number",
        ),
        (
            "close_billing_period",
            {"period": "2025-13"},
            "resolve_period",
            "period '2025-13' is not a month written YYYY-MM (e.g. 2025-03)",
        ),
    ],
)
def test_a_validation_failure_is_not_retried_and_names_the_value(airflow, dag_id, conf, task_id, message):
    hook = Webhook()
    try:
        # The alert webhook as a connection whose host is the whole URL.
        connection = {"conn_type": "http", "host": hook.url}
        output = dags_test(airflow | {"AIRFLOW_CONN_ALERT_WEBHOOK": json.dumps(connection)}, dag_id, conf)
    finally:
        hook.server.shutdown()
    check(output, task_id, message, hook)


def test_an_event_file_that_cannot_be_opened_fails_the_day_without_retries(airflow, tmp_path):
    day = tmp_path / "landing" / "events" / "year=2025" / "month=03" / "day=04"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text("")
    (day / "b.jsonl.gz").write_bytes(b"not gzip")
    hook = Webhook()
    try:
        # The alert webhook as schema, host and port, the path in the extra `endpoint`.
        port = hook.server.server_port
        connection = {"conn_type": "http", "schema": "http", "host": "127.0.0.1", "port": port}
        connection["extra"] = {"endpoint": "/hooks/budgets"}
        env = {"LANDING_URL": str(tmp_path / "landing"), "AIRFLOW_CONN_ALERT_WEBHOOK": json.dumps(connection)}
        output = dags_test(airflow | env, "ingest_usage_events", {}, "2025-03-04")  # the run of day D is D
    finally:
        hook.server.shutdown()
    message = (
        "unreadable event files in 2025-03-04: events/year=2025/month=03/day=04/b.jsonl.gz:"
        " BadGzipFile: Not a gzipped file (b'no')"
    )
    check(output, "load_partition", message, hook)


def check(output: str, task_id: str, message: str, hook: Webhook) -> None:
    assert "state=failed" in output
    assert f"AirflowFailException: {message}" in output
    assert "up_for_retry" not in output.lower() and "UP_FOR_RETRY" not in output
    # The failure alert (meterline.alerts.FailureNotifier, every task's on_failure_callback)
    # carries the same line, on the first and only try, in the log and to the webhook, once.
    alert = next(line for line in output.splitlines() if "meterline task failed:" in line)
    summary, _ = json.JSONDecoder().raw_decode(alert.split("meterline task failed: ", 1)[1])
    assert (summary["task_id"], summary["try_number"], summary["error"]) == (task_id, 1, message)
    assert hook.received == [summary]
