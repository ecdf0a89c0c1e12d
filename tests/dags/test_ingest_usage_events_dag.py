"""ingest_usage_events runs in Airflow: loads its own day partition, logs the counts, and a re-run
of the same interval changes nothing."""

from __future__ import annotations

from datetime import date

import pytest

from meterline import airflow_env, warehouse
from meterline.catalog.load import load_catalog
from meterline.synthetic.catalog import generate_catalog
from meterline.synthetic.events import generate

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_ingest_usage_events_loads_its_interval_once(airflow, warehouse_url, tmp_path):
    landing = str(tmp_path / "landing")
    # The billing area's catalog generator and loader: the events generator reads its files.
    generate_catalog(landing, period=date(2025, 3, 1))
    load_catalog(warehouse_url, landing)
    g = generate(landing, date(2025, 3, 3), 2, events_per_day=500, files_per_day=2)
    env = {**airflow, "LANDING_URL": landing}

    # A manual run (`airflow dags test`) for 2025-03-04 is the run of that day, as a scheduled or
    # backfill run of 03-04 is: interval [03-04, 03-05), partition day=04 (meterline.timetables).
    done = airflow_env.dags_test("ingest_usage_events", env, logical_date="2025-03-04")

    output = done.stdout + done.stderr
    day = g.manifest["days"]["2025-03-04"]
    assert day["lines"] == 511 and day["rejected"] == 7 and day["duplicates"] == 3
    # Day 3 is not loaded, so its event re-delivered on day 4 is seen first on day 4: 501 + 1.
    assert (
        "events 2025-03-04: files read 2 (skipped, already ingested: 0), rows read 511, loaded 502, duplicates 2,"
        in output
    )
    assert "rejected 7 (future_timestamp=1, invalid_timestamp=1, malformed_json=1" in output
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        assert conn.execute("select partition_date, count(*) from raw.events group by 1").fetchall() == [
            (date(2025, 3, 4), 502)
        ]
        counts = conn.execute(
            "select counts from ops.pipeline_runs where dag_id = 'ingest_usage_events' and task_id = 'load_partition'"
        ).fetchone()
    # The listener plugin keeps the task's counts in ops.pipeline_runs.
    assert {
        k: counts[0][k] for k in ("rows_read", "rows_loaded", "duplicates", "rejected", "rejected:malformed_json")
    } == {
        "rows_read": 511,
        "rows_loaded": 502,
        "duplicates": 2,
        "rejected": 7,
        "rejected:malformed_json": 1,
    }

    again = airflow_env.dags_test("ingest_usage_events", env, logical_date="2025-03-04")
    assert "files read 0 (skipped, already ingested: 2), rows read 0, loaded 0" in again.stdout + again.stderr


def test_backfill_of_a_date_range_runs_one_partition_per_day(airflow):
    """`airflow backfill create` plans one run per day, logical date = the day partition it loads."""
    airflow_env.run(["dags", "reserialize"], airflow, capture_output=True)
    done = airflow_env.run(
        ["backfill", "create", "--dag-id", "ingest_usage_events", "--from-date", "2025-03-01", "--to-date",
         "2025-03-03", "--dry-run"],
        airflow,
        capture_output=True,
        text=True,
    )  # fmt: skip
    planned = [line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| 2025-")]
    assert planned == ["2025-03-01 00:00:00+00:00", "2025-03-02 00:00:00+00:00", "2025-03-03 00:00:00+00:00"]
