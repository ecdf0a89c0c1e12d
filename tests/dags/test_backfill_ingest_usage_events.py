"""A real backfill: `airflow backfill create` over three days of ingest_usage_events, executed by a
scheduler (LocalExecutor on the SQLite metadata database, the Task SDK's execution API served by
`airflow api-server --apps execution`), gives tables equal, row for row, to three single runs of
the same days in another warehouse database.

In Airflow 3 `backfill create` only records the runs; the scheduler executes them. Cron scheduling
is switched off (`[scheduler] use_job_schedule = False`) so unpausing the DAG, which the scheduler
requires before it queues any task, does not also start catching up from the DAG's start_date.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pytest
from psycopg import sql

from meterline import airflow_env, transform, warehouse
from meterline.catalog.load import load_catalog
from meterline.config import project_root
from meterline.synthetic.catalog import generate_catalog
from meterline.synthetic.events import generate

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

START = date(2025, 3, 1)
DAYS = 3
DAG_ID = "ingest_usage_events"

# Every column but the load timestamps and the rejection's identity (a retried attempt may use up
# sequence values): what a re-load must reproduce exactly.
TABLES = {
    ("raw", "events"): ["event_id", "idempotency_key", "subscription_id", "event_type", "properties", "timestamp",
                        "signature", "source_file", "line_no", "partition_date"],
    ("raw", "events_rejected"): ["source_file", "checksum", "line_no", "reason", "raw_record", "idempotency_key",
                                 "partition_date"],
    ("raw", "ingested_files"): ["source_file", "checksum", "feed", "partition_date", "file_format", "size_bytes",
                                "rows_read", "rows_loaded", "duplicates", "rejected"],
    ("marts", "usage_hourly"): ["subscription_id", "event_type", "hour", "event_count", "total_tokens"],
}  # fmt: skip
# The usage mart and what it reads; no lookback, so a build covers exactly what was loaded.
USAGE = ["run", "--select", "+usage_hourly", "--vars", "{usage_lookback_minutes: 0}"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _scheduler(env: dict[str, str], logs: Path) -> Iterator[None]:
    """`airflow api-server --apps execution` and `airflow scheduler` for the duration."""
    port = _free_port()
    env.update(
        {
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # Scheduler and API server must agree on the key that signs task tokens.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        }
    )
    logs.mkdir(parents=True, exist_ok=True)
    commands = {
        "api-server": ["api-server", "--apps", "execution", "--host", "127.0.0.1", "--port", str(port)],
        "scheduler": ["scheduler"],
    }
    procs: list[subprocess.Popen] = []
    try:
        for name, args in commands.items():
            with open(logs / f"{name}.log", "w") as log:
                procs.append(
                    subprocess.Popen(
                        [airflow_env.airflow_executable(), *args],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _backfill_runs(airflow_db: Path) -> list[tuple[str, str]]:
    """The runs `backfill create` planned (all at once, queued) and their states."""
    with sqlite3.connect(airflow_db, timeout=30) as meta:
        rows = meta.execute(
            "select logical_date, state from dag_run where dag_id = ? and run_type = 'backfill' order by logical_date",
            [DAG_ID],
        ).fetchall()
    return [(str(logical_date)[:10], state) for logical_date, state in rows]


def _wait_for_backfill(airflow_db: Path, logs: Path, timeout: float) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _backfill_runs(airflow_db)
        if runs and all(state in ("success", "failed") for _, state in runs):
            return runs
        time.sleep(2)
    tails = {log.name: "\n".join(log.read_text().splitlines()[-40:]) for log in logs.glob("*.log")}
    raise AssertionError(f"backfill not finished after {timeout:.0f} s: {_backfill_runs(airflow_db)}\n{tails}")


def _rows(conninfo: str) -> dict[str, list[tuple]]:
    with warehouse.connect(conninfo, autocommit=True) as conn:
        rows = {}
        for (schema, table), columns in TABLES.items():
            cols = sql.SQL(", ").join(map(sql.Identifier, columns))
            query = sql.SQL("select {cols} from {table} order by {cols}").format(
                cols=cols, table=sql.Identifier(schema, table)
            )
            rows[f"{schema}.{table}"] = conn.execute(query).fetchall()
        return rows


@pytest.fixture
def second_warehouse(server_url: str, template_db: str) -> Iterator[str]:
    name = f"{template_db.removesuffix('_template')}_single_runs"
    warehouse.drop_database(server_url, name)
    warehouse.create_database(server_url, name, template=template_db)
    yield warehouse.with_database(server_url, name)
    warehouse.drop_database(server_url, name)


@pytest.mark.timeout(900)  # the suite default: two test workers share the CPU (make test)
def test_backfill_of_three_days_equals_three_single_runs(airflow, warehouse_url, second_warehouse, tmp_path):
    landing = str(tmp_path / "landing")
    generate_catalog(landing, period=START)
    g = generate(landing, START, DAYS, events_per_day=300, files_per_day=2)
    for conninfo in (warehouse_url, second_warehouse):
        load_catalog(conninfo, landing)

    # Each side gets an Airflow home of its own, copied from the migrated template: the DAG is
    # unpaused in the backfill's, and a backfill skips logical dates that already have a run (so
    # neither may leave runs in the session's home, where other tests plan backfills of March 2025).
    homes = {}
    for side in ("backfill", "single"):
        homes[side] = tmp_path / f"airflow-{side}"
        homes[side].mkdir()
        shutil.copy(project_root() / ".airflow" / "test-template" / "airflow.db", homes[side] / "airflow.db")
    home = homes["backfill"]

    # Three single runs into the second database, named as the backfill names them: day D's run
    # has logical date D (meterline.dagrun makes it the scheduled run of D, data interval D to D+1).
    single = airflow_env.environment(homes["single"], second_warehouse) | {"LANDING_URL": landing}
    plan = [{"dag_id": DAG_ID, "logical_date": f"{START + timedelta(days=i)}T00:00:00+00:00"} for i in range(DAYS)]
    assert [state for _, _, state in airflow_env.run_plan(plan, single)] == ["success"] * DAYS

    env = airflow_env.environment(home, warehouse_url) | {
        "LANDING_URL": landing,
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
    }
    airflow_env.run(["dags", "reserialize"], env, capture_output=True)
    airflow_env.run(["dags", "unpause", DAG_ID], env, capture_output=True)
    last = START + timedelta(days=DAYS - 1)
    with _scheduler(env, home / "service-logs"):
        # One run at a time: which day sees a re-delivered event first must be the same as in order.
        airflow_env.run(
            ["backfill", "create", "--dag-id", DAG_ID, "--from-date", START.isoformat(), "--to-date",
             last.isoformat(), "--max-active-runs", "1"],
            env,
            capture_output=True,
        )  # fmt: skip
        runs = _wait_for_backfill(home / "airflow.db", home / "service-logs", timeout=420)
    assert runs == [(str(START + timedelta(days=i)), "success") for i in range(DAYS)]

    for conninfo in (warehouse_url, second_warehouse):
        transform.run(USAGE, conninfo, capture_output=True)
    backfilled, single_runs = _rows(warehouse_url), _rows(second_warehouse)
    assert backfilled.keys() == single_runs.keys()
    for table, rows in backfilled.items():
        assert rows == single_runs[table], table
    # And both are what the generator wrote: every accepted event once, each file once.
    totals = g.manifest["totals"]
    assert len(backfilled["raw.events"]) == g.manifest["accepted_distinct_events"]
    assert len(backfilled["raw.events_rejected"]) == totals["rejected"]
    assert len(backfilled["raw.ingested_files"]) == DAYS * 2
    assert sorted({row[-1] for row in backfilled["raw.events"]}) == [START + timedelta(days=i) for i in range(DAYS)]
    truth = {
        (r["subscription_id"], r["event_type"], r["hour"], r["event_count"], r["total_tokens"])
        for r in g.truth.to_pylist()
    }
    assert {(str(s), t, h, n, int(tok)) for s, t, h, n, tok in backfilled["marts.usage_hourly"]} == truth
