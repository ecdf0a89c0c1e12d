"""`make demo`: the whole pipeline on the embedded warehouse, with progress on the terminal.

Each step is a function; the demo runs them in order and stops at the first failure, saying
which step failed. Running it again is safe: every step is idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from meterline import airflow_env, transform, warehouse


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def step_warehouse(ctx: dict) -> str:
    ctx["url"] = warehouse.url()
    applied = warehouse.bootstrap(ctx["url"])
    return f"warehouse ready, migrations applied now: {', '.join(applied) or 'none'}"


def step_airflow(ctx: dict) -> str:
    ctx["airflow_env"] = env = airflow_env.environment(conninfo=ctx["url"])
    migrated = airflow_env.migrate(env)
    return f"Airflow metadata {'migrated' if migrated else 'up to date'} in {env['AIRFLOW_HOME']}"


def step_setup_dag(ctx: dict) -> str:
    airflow_env.dags_test("warehouse_setup", ctx["airflow_env"])
    return "DAG warehouse_setup ran in Airflow: success"


def step_dbt(ctx: dict) -> str:
    transform.run(["build", "--quiet"], ctx["url"])
    return "dbt build passed"


STEPS: list[tuple[str, Callable[[dict], str]]] = [
    ("start the warehouse", step_warehouse),
    ("prepare Airflow", step_airflow),
    ("run warehouse_setup through Airflow", step_setup_dag),
    ("build the dbt project", step_dbt),
]


def run() -> int:
    ctx: dict = {}
    started = time.monotonic()
    for number, (title, step) in enumerate(STEPS, start=1):
        _say(f"{number}/{len(STEPS)} {title} ...")
        t0 = time.monotonic()
        try:
            outcome = step(ctx)
        except Exception as exc:
            _say(f"FAILED at step {number} ({title}): {exc}")
            return 1
        _say(f"    {outcome} ({time.monotonic() - t0:.1f}s)")
    _say(f"done in {time.monotonic() - started:.0f}s")
    _say(f"warehouse: {ctx['url']}  (connect: .venv/bin/meterline warehouse psql)")
    return 0
