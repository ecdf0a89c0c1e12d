"""Run several DAG runs through Airflow in one process: `python -m meterline.dagrun PLAN.json`.

Each run is `dag.test()`, exactly what `airflow dags test` does, but Airflow starts and parses
the DAG folder once instead of once per run, which turns a month of daily partitions from
minutes of start-up into seconds. The plan is a JSON list of
`{"dag_id": ..., "logical_date": "2025-03-01T00:00:00+00:00", "conf": {...}}`; runs go in
order and the first failed run stops the plan (exit 1).

Three things differ from a bare `dag.test()`, so that the runs look like, and are, the runs the
scheduler would have made:

- A logical date the DAG's timetable schedules becomes that scheduled run: run type `scheduled`,
  the timetable's data interval and run_after (a daily data-interval DAG's run of day D has
  logical date D, data interval D to D+1 and runs after D+1), so a scheduler started later
  continues after it instead of re-creating it. Any other date (a manual-only or asset-triggered
  DAG, a moment off the schedule) is a manual run as `dag.test()` makes it.
- The run starts when it starts (`dag.test()` dates its start at the logical date, so the UI
  showed a run of last month as lasting a month).
- Each task's output is written to the task's log file under `[logging] base_log_folder`, named
  by Airflow's own `log_filename_template`, where the API server reads it for the UI (the tail of
  a task that did not succeed is printed too).

Lines printed for the caller (`meterline.airflow_env.run_plan`):
`START <dag_id> <logical_date>`, `TASK <dag_id> <task_id> <state> <seconds> <n>/<tasks>`
and `RUN <dag_id> <logical_date> <state> <seconds>`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock


def scheduled_info(dag, logical_date):
    """The DagRunInfo of the run the DAG's timetable schedules at `logical_date`, or None."""
    from airflow.timetables.base import TimeRestriction

    if logical_date is None or not dag.timetable.can_be_scheduled:
        return None
    info = dag.timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=logical_date, latest=None, catchup=True),
    )
    return info if info is not None and info.logical_date == logical_date else None


def _create_run(*, dag, run_id, logical_date, data_interval, run_after, start_date, session, **kwargs):
    """Stands in for `airflow.models.dagrun.get_or_create_dagrun`, which `dag.test()` calls: the same
    replacement of an earlier run of that logical date, made as the scheduler would make it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils import timezone
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    earlier = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == logical_date))
    if earlier:
        session.delete(earlier)
        session.commit()
    run_type = DagRunType.MANUAL
    if info := scheduled_info(dag, logical_date):
        run_type, data_interval, run_after = DagRunType.SCHEDULED, info.data_interval, info.run_after
        run_id = dag.timetable.generate_run_id(run_type=run_type, run_after=run_after, data_interval=data_interval)
    return dag.create_dagrun(
        run_id=run_id,
        logical_date=logical_date,
        data_interval=data_interval,
        run_after=run_after,
        run_type=run_type,
        state=DagRunState.RUNNING,
        start_date=timezone.utcnow(),
        session=session,
        **kwargs,
    )


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Everything written to this process's stdout and stderr (the task's logs, a subprocess's
    output) goes to `path` until the block ends. A file, not a pipe to tee: a process the task
    leaves running (an embedded PostgreSQL it started) keeps the descriptors and would block on
    a pipe nobody reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "wb") as log:  # one attempt, one file: a second demo rewrites it
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _logged(run_task, log_folder: Path):
    """`dag.test()`'s task runner, writing each attempt's log where the API server reads it."""
    from airflow.utils.log.file_task_handler import FileTaskHandler
    from airflow.utils.session import create_session

    handler = FileTaskHandler(base_log_folder=str(log_folder))
    done: dict[str, int] = {}

    def run(*, ti, task, **kwargs):
        with create_session() as session:
            path = log_folder / handler._render_filename(ti, ti.try_number, session=session)
        started = time.monotonic()
        try:
            with _output_to(path):
                return run_task(ti=ti, task=task, **kwargs)
        finally:
            done[ti.run_id] = done.get(ti.run_id, 0) + 1
            state = str(getattr(ti.state, "value", ti.state))
            if state != "success":  # the caller shows the tail of a failed plan: the task's own
                print(*path.read_text(errors="replace").splitlines()[-60:], sep="\n", flush=True)
            total = len(task.dag.task_dict) if task.dag else 0
            print(
                f"TASK {ti.dag_id} {ti.task_id} {state} {time.monotonic() - started:.1f} {done[ti.run_id]}/{total}",
                flush=True,
            )

    return run


def main(plan_path: str) -> int:
    import airflow.sdk.definitions.dag as sdk_dag
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import timezone

    from meterline.config import project_root

    plan = json.loads(Path(plan_path).read_text())
    bag = DagBag(dag_folder=str(project_root() / "dags"))
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 2
    log_folder = Path(conf.get("logging", "base_log_folder"))
    with (
        mock.patch("airflow.models.dagrun.get_or_create_dagrun", _create_run),
        mock.patch.object(sdk_dag, "_run_task", _logged(sdk_dag._run_task, log_folder)),
    ):
        for item in plan:
            dag = bag.dags[item["dag_id"]]
            logical_date = timezone.parse(item["logical_date"]) if item.get("logical_date") else timezone.utcnow()
            started = time.monotonic()
            print(f"START {item['dag_id']} {logical_date.isoformat()}", flush=True)
            run = dag.test(logical_date=logical_date, run_conf=item.get("conf"))
            state = str(getattr(run.state, "value", run.state))
            seconds = time.monotonic() - started
            print(f"RUN {item['dag_id']} {logical_date.isoformat()} {state} {seconds:.1f}", flush=True)
            if state != "success":
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
