"""Failure alerts for every DAG, as an Airflow notifier: a one-line summary in the task log, and
a POST of the same summary to the HTTP connection `alert_webhook` when it is defined.

`dag_defaults()` sets `FailureNotifier()` as every task's on_failure_callback. The webhook is an
ordinary Airflow HTTP connection (the UI, a secrets backend or `AIRFLOW_CONN_ALERT_WEBHOOK`): its
host holds the whole URL, or schema/host/port plus the path in the extra `endpoint`; the POST goes
through the HTTP provider's hook. Locally `airflow_env.environment()` defines the connection from
`METERLINE_ALERT_WEBHOOK_URL`.

Light to import (DAG files reference it): the hook is imported when an alert is sent.
"""

from __future__ import annotations

import json
import logging

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

ALERT_CONN_ID = "alert_webhook"


def summary(context) -> dict[str, object]:
    """What the alert says: which task of which run failed, on which try, and why."""
    ti = context.get("task_instance")
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "error": str(context.get("exception"))[:2000],
    }


class FailureNotifier(BaseNotifier):
    """on_failure_callback: log the summary, post it to the webhook connection when there is
    one. Never raises: alerting must not mask the failure it reports."""

    template_fields = ("conn_id",)

    def __init__(self, conn_id: str = ALERT_CONN_ID) -> None:
        super().__init__()
        self.conn_id = conn_id

    def notify(self, context) -> None:
        body = summary(context)
        log.error("meterline task failed: %s", json.dumps(body))
        try:
            from airflow.providers.http.hooks.http import HttpHook
            from airflow.sdk import Connection
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                conn = Connection.get(self.conn_id)
            except AirflowNotFoundException:
                return  # no webhook configured: the log line is the alert
            endpoint = conn.extra_dejson.get("endpoint")
            HttpHook(method="POST", http_conn_id=self.conn_id).run(endpoint, json=body, extra_options={"timeout": 10})
        except Exception as exc:  # see docstring
            log.warning("failure alert not delivered to connection %s: %s", self.conn_id, exc)
