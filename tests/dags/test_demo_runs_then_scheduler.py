"""The demo's runs are the runs the scheduler would have made: after a few days run the demo's way
(meterline.dagrun, `dag.test` in one process) and one more by hand (`airflow dags test`), unpausing
every DAG lets a real scheduler carry on from the next day instead of looping on "run already
exists; skipping dagrun creation" for a day already run. The runs have Airflow's daily
data-interval naming (logical date D, data interval D to D+1, run after D+1), started when they
ran, and their task logs are where the API server reads them.

The scheduler runs with the default pool at 0 slots, so it creates runs but executes nothing (no
execution API server is needed), on the SQLite metadata database of a home of its own.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from meterline import airflow_env, warehouse
from meterline.catalog.load import load_catalog
from meterline.synthetic.catalog import generate_catalog
from meterline.synthetic.events import generate

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

# The events DAG's start_date: a scheduler on a fresh home starts its catch-up here, so it meets
# the demo's runs at once (and on main looped on the second of them).
START = date(2025, 1, 1)
DAYS = 3
DAG_ID = "ingest_usage_events"


def _utc(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _runs(airflow_db, dag_id: str) -> list[tuple]:
    with sqlite3.connect(airflow_db, timeout=30) as meta:
        rows = meta.execute(
            "select run_id, run_type, logical_date, data_interval_start, data_interval_end, run_after,"
            " start_date, end_date, state from dag_run where dag_id = ? order by logical_date",
            [dag_id],
        ).fetchall()
    return [(r[0], r[1], *map(_utc, r[2:8]), r[8]) for r in rows]


@pytest.mark.timeout(900)  # ~3 min on a quiet machine; minutes more at a load of 10
def test_demo_runs_then_unpausing_every_dag_does_not_loop(airflow_template, warehouse_url, dbt_manifest, tmp_path):
    landing = str(tmp_path / "landing")
    generate_catalog(landing, period=START)
    load_catalog(warehouse_url, landing)
    g = generate(landing, START, DAYS, events_per_day=60, files_per_day=1)
    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copy(airflow_template / "airflow.db", home / "airflow.db")  # no other test's runs in it
    env = airflow_env.environment(home, warehouse_url) | {"LANDING_URL": landing}

    began = datetime.now(UTC)
    # Another DAG's run at its own schedule's time too (cron-triggered, no dbt: cheap), then the days.
    plan = [{"dag_id": "ingest_payments", "logical_date": f"{START}T00:00:00+00:00"}] + [
        {"dag_id": DAG_ID, "logical_date": f"{START + timedelta(days=i)}T00:00:00+00:00"} for i in range(DAYS)
    ]
    assert [state for _, _, state in airflow_env.run_plan(plan, env)] == ["success"] * len(plan)

    # Named as the scheduler names them: run of day D = logical date D, interval [D, D+1), after D+1
    # (Airflow 3 names a scheduled run's id by its run_after).
    midnight = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in (START + timedelta(days=i) for i in range(4))]
    demo_runs = _runs(home / "airflow.db", DAG_ID)
    assert [r[:6] for r in demo_runs] == [
        (f"scheduled__{midnight[i + 1].isoformat()}", "scheduled", midnight[i], midnight[i], midnight[i + 1],
         midnight[i + 1])
        for i in range(DAYS)
    ]  # fmt: skip
    # Started when they ran (not at their logical date), so the UI's durations are seconds.
    for run in demo_runs:
        assert began <= run[6] <= run[7] <= datetime.now(UTC), run
        assert run[7] - run[6] < timedelta(minutes=5)
    # Each day loaded its own partition, as the generator wrote it.
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        loaded = dict(conn.execute("select partition_date, count(*) from raw.events group by 1").fetchall())
    assert sorted(loaded) == [START + timedelta(days=i) for i in range(DAYS)]
    assert sum(loaded.values()) == g.manifest["accepted_distinct_events"]
    # Task logs where the API server reads them: [logging] base_log_folder / log_filename_template.
    for i, (run_id, *_rest) in enumerate(demo_runs):
        log = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=load_partition" / "attempt=1.log"
        assert f"events {START + timedelta(days=i)}: files read 1" in log.read_text()

    # Then a day run by hand, as an operator would (`airflow dags test`, a manual run): the run of
    # that day too, data interval [D, D+1).
    manual_day = midnight[DAYS]
    airflow_env.dags_test(DAG_ID, env, logical_date=manual_day.isoformat())
    manual = _runs(home / "airflow.db", DAG_ID)[DAYS]
    assert manual[1:6] == ("manual", manual_day, manual_day, manual_day + timedelta(days=1), manual[5])
    demo_runs.append(manual)
    days_run = DAYS + 1

    # Every DAG unpaused, as a user would after the demo; no task slot, so nothing executes.
    airflow_env.run(["dags", "reserialize"], env, capture_output=True)
    with sqlite3.connect(home / "airflow.db", timeout=30) as meta:
        meta.execute("update dag set is_paused = 0")
        meta.execute("update slot_pool set slots = 0 where pool = 'default_pool'")
    scheduler_log = tmp_path / "scheduler.log"
    with open(scheduler_log, "w") as out:
        scheduler = subprocess.Popen(
            [airflow_env.airflow_executable(), "scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and scheduler.poll() is None:
            if len(_runs(home / "airflow.db", DAG_ID)) > days_run:
                time.sleep(10)  # ten seconds of scheduler loops more: a loop would log every one
                break
            time.sleep(2)
    finally:
        scheduler.terminate()
        try:
            scheduler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            scheduler.kill()
            scheduler.wait()
    output = scheduler_log.read_text()

    runs = _runs(home / "airflow.db", DAG_ID)
    assert runs[:days_run] == demo_runs, "the scheduler changed or replaced a run made before it"
    # The scheduler carried on with the day after the last one run, named the same way.
    following = midnight[DAYS] + timedelta(days=1)
    assert runs[days_run][:6] == (
        f"scheduled__{following + timedelta(days=1):%Y-%m-%dT%H:%M:%S+00:00}", "scheduled", following, following,
        following + timedelta(days=1), following + timedelta(days=1),
    ), output[-3000:]  # fmt: skip
    # And it never skipped the same run twice: each "already exists" (if any) moved it on.
    skipped = re.findall(r"run already exists; skipping dagrun creation.*", output)
    assert len(skipped) == len(set(skipped)), skipped[:5]
