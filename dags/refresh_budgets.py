"""
### refresh_budgets

Daily: loads `LANDING_URL/budgets/budgets.csv` into `raw.budgets` (all or nothing; a bad line
fails the task naming every line and reason, and the previous budgets stay), rebuilds
`marts.budget_master` (with `last_refreshed_at`) and `marts.budget_status` (actual, run-rate
forecast, pct_used, state) as of the run's day, then posts one webhook per budget, month and
threshold newly crossed.

- The webhook is the Airflow connection `budget_webhook` (HTTP: a host holding the whole URL,
  or schema/host/port with an `endpoint` extra).
- An alert is recorded in `ops.budget_alerts` in the same transaction as its post: a re-run, a
  backfill or a concurrent run never sends it twice; a post that fails is rolled back and
  retried by the task's retries or the next run.
- Budget data older than 24 h is stale (`meterline.budgets.alerts.freshness`).
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
    def load_budgets() -> dict[str, int]:
        from meterline.budgets.load import load_budgets

        return {"budgets": load_budgets(None)}

    @task
    def build_budget_status(ds=None) -> None:
        import json

        from meterline import transform

        transform.run(
            ["build", "--select", "currencies", "stg_budgets__budgets", "budget_master", "budget_status",
             "--indirect-selection", "cautious", "--vars", json.dumps({"budget_as_of": ds})]
        )  # fmt: skip

    @task
    def send_alerts() -> dict[str, int]:
        from airflow.sdk import Connection

        from meterline.budgets import alerts

        conn = Connection.get("budget_webhook")
        url = alerts.webhook_url(
            conn.host, schema=conn.schema, port=conn.port, endpoint=conn.extra_dejson.get("endpoint", "")
        )
        return {"alerts_sent": len(alerts.send_alerts(None, url))}

    load_budgets() >> build_budget_status() >> send_alerts()


refresh_budgets()
