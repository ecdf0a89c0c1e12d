"""Failure alerts for every DAG: a clear summary in the log, and to a webhook when configured.

Light to import: DAG files reference `notify_failure` as their on_failure_callback.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request

log = logging.getLogger(__name__)


def notify_failure(context: dict) -> None:
    """on_failure_callback: a one-paragraph summary in the log, and to the webhook when
    `METERLINE_ALERT_WEBHOOK_URL` is set. Never raises: alerting must not mask the failure."""
    ti = context.get("task_instance")
    summary = {
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "error": str(context.get("exception"))[:2000],
    }
    log.error("meterline task failed: %s", json.dumps(summary))
    url = os.environ.get("METERLINE_ALERT_WEBHOOK_URL")
    if not url:
        return
    try:
        request = urllib.request.Request(
            url, data=json.dumps(summary).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()
    except Exception as exc:  # alerting must not mask the failure it reports
        log.warning("failure webhook not delivered: %s", exc)
