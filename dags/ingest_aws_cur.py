"""
### ingest_aws_cur

Loads AWS Cost and Usage Report deliveries from `LANDING_URL/cur/` (local or `s3://`) into
`raw.cur_line_items`, every 6 hours. Legacy CUR (CSV.gz with manifest), legacy Athena-style
Parquet and CUR 2.0 Parquet are all found; each new delivery is loaded in order (billing period,
then delivery time) and replaces its whole billing period in one transaction. A delivery already
loaded, or with the same files as the live one, is skipped, and so is one that is not the current
delivery AWS names for its period (the log says why). A delivery AWS is still writing (the report's
status UPDATING, or a partition first seen) waits for a later run. `raw.cur_deliveries` is the ledger.

The log states the deliveries found, loaded, skipped and failed, and rows and cost per period.
A delivery that cannot be loaded (a truncated or corrupt file) leaves the previous delivery of its
period in place, is recorded as failed with the file and reason, and fails the run after the
other deliveries have loaded. When anything loaded, the asset `warehouse://raw/cur` is updated,
which triggers `transform_warehouse`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from meterline.assets import RAW_CUR
from meterline.config import dag_defaults


@dag(
    dag_id="ingest_aws_cur",
    schedule="0 */6 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    # Deliveries are found by listing the landing zone, not by interval: one run catches up.
    catchup=False,
    max_active_runs=1,
    tags=["meterline", "ingest", "cur"],
    default_args=dag_defaults(),
    doc_md=__doc__,
)
def ingest_aws_cur():
    @task(outlets=[RAW_CUR])
    def load_deliveries() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from meterline.connections import warehouse_conninfo
        from meterline.cur import load

        summary = load.run(warehouse_conninfo())
        report = load.summarise(summary)
        if not summary.by_status("loaded"):
            if summary.failed:
                raise RuntimeError("no CUR delivery loaded; failed: " + "; ".join(summary.failed))
            if summary.waiting:
                raise AirflowSkipException("no CUR delivery loaded; waiting: " + "; ".join(summary.waiting))
            raise AirflowSkipException("no new CUR delivery")
        return report

    @task
    def check_failures(report: dict) -> None:
        if report["failed"]:
            raise RuntimeError("CUR deliveries failed: " + "; ".join(report["failed"]))

    check_failures(load_deliveries())


ingest_aws_cur()
