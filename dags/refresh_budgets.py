"""
### refresh_budgets

Daily: rebuilds `marts.budget_master` (stamped `last_refreshed_at`) and `marts.budget_status`
(actual, run-rate forecast, pct_used, state) as of the run's day from the budgets in the billing
catalog (`budgets.csv`, loaded into `raw.catalog_budgets` by `sync_billing_catalog`), then posts
one webhook per budget, month and threshold newly crossed.

- Budget data refreshed more than 24 h before the monthly close's suites run fails the gate's
  freshness suite (`dq.freshness.budgets_refreshed_within_24h`) and blocks the period: keep this
  DAG running daily, or run it (or `meterline budgets refresh`) before a close.
- Before the first close (no `marts.invoice_header` yet) only `budget_master` is refreshed.
- The webhook is the Airflow connection `budget_webhook` (HTTP: a host holding the whole URL,
  or schema/host/port with an `endpoint` extra). Without it, crossings are logged and left
  pending: the first run that has the connection sends them.
- An alert is recorded in `ops.budget_alerts` in the same transaction as its post: a re-run, a
  backfill or a concurrent run never sends it twice; a post that fails is rolled back and
  retried by the task's retries or the next run.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from meterline.config import dag_defaults


@dag(
    dag_id="refresh_budgets",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    # Budgets are measured as of today: a missed day needs no replay.
    catchup=False,
    max_active_runs=1,
    tags=["meterline", "budgets", "alerts"],
    default_args=dag_defaults(),
    doc_md=__doc__,
)
def refresh_budgets():
    @task
    def refresh(ds=None) -> dict[str, int]:
        from datetime import date

        from meterline.budgets.refresh import refresh
        from meterline.connections import warehouse_conninfo

        return refresh(warehouse_conninfo(), date.fromisoformat(ds)).counts()

    @task
    def send_alerts() -> dict[str, int]:
        import logging

        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException

        from meterline.budgets import alerts
        from meterline.connections import warehouse_conninfo

        conninfo = warehouse_conninfo()
        try:
            conn = Connection.get("budget_webhook")
        except AirflowNotFoundException:
            waiting = alerts.pending(conninfo)
            logging.getLogger(__name__).warning(
                "no budget_webhook connection: %d threshold crossing(s) not alerted, kept for the next run",
                len(waiting),
            )
            return {"alerts_sent": 0, "alerts_pending": len(waiting)}
        url = alerts.webhook_url(
            conn.host, schema=conn.schema, port=conn.port, endpoint=conn.extra_dejson.get("endpoint", "")
        )
        return {"alerts_sent": len(alerts.send_alerts(conninfo, url)), "alerts_pending": 0}

    refresh() >> send_alerts()


refresh_budgets()
