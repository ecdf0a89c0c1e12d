"""Benchmark: the demo month's nightly transform and monthly close through Airflow.

    .venv/bin/python bench/bench_dags.py prepare          # once: landing zone and template databases
    .venv/bin/python bench/bench_dags.py transform        # transform_warehouse through Airflow
    .venv/bin/python bench/bench_dags.py transform-floor  # the same models as one `dbt build`
    .venv/bin/python bench/bench_dags.py close            # close_billing_period through Airflow
    .venv/bin/python bench/bench_dags.py close-floor      # the close's dbt build alone
    .venv/bin/python bench/bench_dags.py copy             # what every command above also pays

`prepare` writes the demo's month (meterline.demo's sizes: 12 tenants, 24 subscriptions,
20,000 events a day, two CUR deliveries of 50,000 lines) under bench/.work/dags/, loads it
through Airflow (catalog sync, CUR ingest, one events run per day) into a database kept as a
template, then runs transform_warehouse and refresh_budgets on a copy kept as a second template:
the warehouse as the close finds it.

Each measured command starts from a fresh copy of its template (CREATE DATABASE ... TEMPLATE)
and a fresh copy of a migrated Airflow metadata database, so every run is the month's first
transform (or first close) and the runs are comparable. It prints the DAG run's own seconds as
`dag_run_seconds`; time the whole command from outside (it includes Airflow's start-up and the
database copy, which `copy` measures on its own). The floors are the same work without Airflow:
the nightly selection as one `dbt build` process, and the close's build step alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from meterline import airflow_env, transform, warehouse
from meterline.demo import CUR_COST_DIVISOR, CUR_ROWS, EVENTS_PER_DAY, PERIOD, SUBSCRIPTIONS, TENANTS, _days

WORK = Path(__file__).resolve().parent / ".work" / "dags"
LANDING = WORK / "landing"
AIRFLOW_TEMPLATE = WORK / "airflow-template"
LOADED, TRANSFORMED, RUN = "meterline_bench_dags_loaded", "meterline_bench_dags_transformed", "meterline_bench_dags_run"
LABEL = f"{PERIOD:%Y-%m}"
# The demo month's runs: the loads, then the nightly transform, the budgets refresh and the close.
*INGEST, NIGHTLY, BUDGETS, CLOSE = airflow_env.month_plan(PERIOD, len(_days(PERIOD)))


def _server() -> str:
    return warehouse.url()


def _fresh_copy(template: str) -> str:
    server = _server()
    warehouse.drop_database(server, RUN)
    warehouse.create_database(server, RUN, template=template)
    return warehouse.with_database(server, RUN)


def _airflow(conninfo: str, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(AIRFLOW_TEMPLATE / "airflow.db", home / "airflow.db")
    for marker in AIRFLOW_TEMPLATE.glob(".migrated-*"):
        shutil.copy(marker, home / marker.name)
    return airflow_env.environment(home, conninfo) | {
        "LANDING_URL": str(LANDING),
        "OUTBOX_URL": str(home / "outbox"),
    }


def _dag_runs(plan: list[dict], conninfo: str) -> None:
    """The plan's runs through Airflow (one `dag.test` process); each prints its own seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-dags-") as home:
        airflow_env.run_plan(plan, _airflow(conninfo, Path(home)), echo=True)


def prepare() -> None:
    from meterline.demo import step_generate

    server = _server()
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ["LANDING_URL"] = str(LANDING)
    print(step_generate({}))
    transform.ensure_manifest(server)
    AIRFLOW_TEMPLATE.mkdir(parents=True, exist_ok=True)
    airflow_env.migrate(airflow_env.environment(AIRFLOW_TEMPLATE, server))

    for name in (LOADED, TRANSFORMED, RUN):
        warehouse.drop_database(server, name)
    warehouse.create_database(server, LOADED)
    loaded = warehouse.with_database(server, LOADED)
    warehouse.bootstrap(loaded)
    _dag_runs(INGEST, loaded)
    warehouse.create_database(server, TRANSFORMED, template=LOADED)
    _dag_runs([NIGHTLY, BUDGETS], warehouse.with_database(server, TRANSFORMED))
    print(
        f"templates {LOADED} (loaded) and {TRANSFORMED} (transformed, budgets refreshed): "
        f"{TENANTS} tenants, {SUBSCRIPTIONS} subscriptions, {EVENTS_PER_DAY:,} events a day, "
        f"{CUR_ROWS:,} CUR lines x 2 deliveries (cost / {CUR_COST_DIVISOR})"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["prepare", "transform", "transform-floor", "close", "close-floor", "copy"])
    what = parser.parse_args(argv).what
    os.environ.setdefault("METERLINE_DBT_TARGET_PATH", str(WORK / "dbt-target"))
    os.environ.setdefault("DBT_LOG_PATH", str(WORK / "dbt-logs"))
    if what == "prepare":
        prepare()
        return 0
    template = LOADED if what.startswith("transform") else TRANSFORMED
    conninfo = _fresh_copy(template)
    transform.ensure_manifest(conninfo)  # cosmos renders the DAG from it: parsed once, not timed twice
    started = time.monotonic()
    if what == "transform":
        _dag_runs([NIGHTLY], conninfo)
    elif what == "transform-floor":
        nightly = ["build", "--select", *transform.NIGHTLY_SELECTION, "--indirect-selection", "cautious"]
        transform.run(nightly, conninfo, capture_output=True, text=True)
    elif what == "close":
        _dag_runs([CLOSE], conninfo)
    elif what == "close-floor":
        from meterline import close

        print(close.build(conninfo, LABEL))
    print(f"{what}_seconds {time.monotonic() - started:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
