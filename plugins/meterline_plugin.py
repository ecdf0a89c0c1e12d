"""meterline's Airflow plugin: a listener that records every DAG run and task outcome, with the
task's counts, in the warehouse's `ops.pipeline_runs`; the close reports in the UI; and the
day-partition timetable of `ingest_usage_events` (meterline.timetables).

The reports app (`meterline.reporting.web`) is mounted on the API server at `/meterline`:
`/meterline/reports/` lists the periods, `/meterline/reports/latest` and
`/meterline/reports/YYYY-MM` show a report from `OUTBOX_URL/reports/`. Only a signed-in Airflow
user (the UI's session cookie or a bearer token) gets them. External views link to them: a
"Close report" tab on every DAG page (the latest report) and a "Close reports" entry in Browse.
"""

from __future__ import annotations

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin
from fastapi import Request

from meterline.reporting.web import create_app
from meterline.timetables import DayPartitionTimetable


def _task_record(task_instance, state: str, error=None):
    from meterline.runs import RunRecord, counts_of

    counts = {}
    if state == "success":
        try:
            counts = counts_of(task_instance.xcom_pull(task_ids=task_instance.task_id, key="return_value"))
        except Exception:  # a task without a return value has no counts
            counts = {}
    context = task_instance.get_template_context() if hasattr(task_instance, "get_template_context") else {}
    dag_run = context.get("dag_run")
    return RunRecord(
        dag_id=task_instance.dag_id,
        run_id=task_instance.run_id,
        task_id=task_instance.task_id,
        map_index=getattr(task_instance, "map_index", -1) or -1,
        state=state,
        try_number=getattr(task_instance, "try_number", None),
        logical_date=getattr(dag_run, "logical_date", None),
        data_interval_start=getattr(dag_run, "data_interval_start", None),
        data_interval_end=getattr(dag_run, "data_interval_end", None),
        started_at=getattr(task_instance, "start_date", None),
        ended_at=getattr(task_instance, "end_date", None),
        counts=counts,
        error=str(error)[:2000] if error else None,
    )


def _dag_run_record(dag_run, state: str, msg: str):
    from meterline.runs import RunRecord

    return RunRecord(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        state=state,
        logical_date=dag_run.logical_date,
        data_interval_start=dag_run.data_interval_start,
        data_interval_end=dag_run.data_interval_end,
        started_at=dag_run.start_date,
        ended_at=dag_run.end_date,
        error=msg if state == "failed" else None,
    )


class RunRecorder:
    """Listener hooks; each writes one row and never raises into Airflow."""

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        from meterline.runs import record_safely

        record_safely(_task_record(task_instance, "success"))

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error):
        from meterline.runs import record_safely

        record_safely(_task_record(task_instance, "failed", error))

    @hookimpl
    def on_dag_run_success(self, dag_run, msg):
        from meterline.runs import record_safely

        record_safely(_dag_run_record(dag_run, "success", msg))

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg):
        from meterline.runs import record_safely

        record_safely(_dag_run_record(dag_run, "failed", msg))


async def _signed_in(request: Request) -> None:
    """Airflow's own check: a valid JWT from `Authorization: Bearer` or the UI's cookie, else 401/403.

    Airflow's API modules are imported at the first request, not when a task process loads plugins.
    """
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials if scheme.lower() == "bearer" else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    await resolve_user_from_token(token)


REPORTS_PREFIX = "/meterline"
# External views' hrefs are relative (no leading slash): the UI resolves them against its
# <base href>, so the links still work when Airflow is served under a sub-path.
REPORTS_HREF = REPORTS_PREFIX.lstrip("/")


class MeterlinePlugin(AirflowPlugin):
    name = "meterline"
    listeners = [RunRecorder()]
    timetables = [DayPartitionTimetable]
    fastapi_apps = [
        {
            "app": create_app(dependencies=[_signed_in]),
            "url_prefix": REPORTS_PREFIX,
            "name": "meterline close reports",
        }
    ]
    external_views = [
        {
            "name": "Close report",
            "href": f"{REPORTS_HREF}/reports/latest",
            "destination": "dag",
            "url_route": "meterline-close-report",
        },
        {
            "name": "Close reports",
            "href": f"{REPORTS_HREF}/reports/",
            "destination": "nav",
            "category": "browse",
            "url_route": "meterline-close-reports",
        },
    ]
