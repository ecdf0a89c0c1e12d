"""
### close_billing_period

The monthly close for one period (a UTC calendar month): build the invoice drafts and the
reconciliation with dbt (one build, tests included), run the data-quality suites, gate, emit the
invoices that pass, and write the close report to `OUTBOX_URL/reports/YYYY-MM.html`. Each task
calls the step of the same name in `meterline.close`; `meterline close --period YYYY-MM` runs
the same steps at a terminal.

Runs at 04:00 UTC on the 1st for the month that just ended. Trigger it by hand for another
period with the param `period` (`YYYY-MM`); re-running a closed period is safe (issued invoices
are never re-issued or changed).

The gate does not retry: a blocked period needs a person. Its task log names each failing check,
the rows and where to look; `ops.invoice_gate` keeps the decision. After fixing the data, trigger
again. To release a period despite one failing check, set `override_check` and
`override_justification` (both recorded in `ops.audit_log`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

from meterline.config import dag_defaults


@dag(
    dag_id="close_billing_period",
    schedule=CronTriggerTimetable("0 4 1 * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["meterline", "billing", "monthly"],
    default_args=dag_defaults(),
    params={
        "period": Param("", type="string", description="YYYY-MM; empty = the month before the run date"),
        "override_check": Param("", type="string", description="one gate check to release for this period"),
        "override_justification": Param("", type="string", description="why (required with override_check)"),
    },
    doc_md=__doc__,
)
def close_billing_period():
    @task
    def resolve_period() -> str:
        from meterline.close import resolve_period
        from meterline.errors import fail_without_retry

        context = get_current_context()
        # A run triggered without a logical date closes the month before it was triggered
        # (run_after, fixed for the run): re-running its tasks later closes the same month.
        with fail_without_retry():  # a period param that is not YYYY-MM
            return resolve_period(context["params"]["period"], context["logical_date"] or context["dag_run"].run_after)

    @task
    def build(period: str) -> dict:
        from meterline.close import build
        from meterline.connections import warehouse_conninfo
        from meterline.errors import fail_without_retry

        with fail_without_retry():  # a period that is not YYYY-MM (failed dbt tests are recorded for the gate)
            return build(warehouse_conninfo(), period)

    @task
    def run_suites(period: str, _built: dict) -> dict:
        from meterline.close import run_suites
        from meterline.connections import warehouse_conninfo

        return run_suites(warehouse_conninfo(), period)

    @task(retries=0)
    def gate(period: str, _suites: dict) -> dict:
        from meterline.close import gate
        from meterline.connections import warehouse_conninfo
        from meterline.errors import fail_without_retry

        params = get_current_context()["params"]
        with fail_without_retry():  # an override naming no check, or without a justification
            return gate(
                warehouse_conninfo(),
                period,
                params["override_check"],
                params["override_justification"],
                "airflow:close_billing_period",
            )

    @task
    def emit(period: str, _gate: dict) -> dict:
        from meterline.close import emit
        from meterline.connections import warehouse_conninfo

        return emit(warehouse_conninfo(), period, actor="airflow:close_billing_period")

    @task(trigger_rule="all_done")
    def report(period: str) -> str:
        from meterline.close import report
        from meterline.connections import warehouse_conninfo

        return report(warehouse_conninfo(), period)

    period = resolve_period()
    emitted = emit(period, gate(period, run_suites(period, build(period))))
    # The report is written whatever the gate decided (finance reads why a period is blocked). As a
    # teardown it does not count towards the run's state, so a blocked close still fails the run.
    emitted >> report(period).as_teardown(setups=period)


close_billing_period()
