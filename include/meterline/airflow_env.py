"""The environment Airflow runs in locally: `.airflow/` home, SQLite metadata, our DAGs.

Everything is passed as `AIRFLOW__*` variables, so no airflow.cfg with a secret is written and
the same DAG files run unchanged under docker-compose, where these are set by the compose file.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from meterline import warehouse
from meterline.config import project_root


def home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or project_root() / ".airflow")


def warehouse_connection(conninfo: str) -> str:
    """`AIRFLOW_CONN_WAREHOUSE` in Airflow's JSON form (a socket path does not fit a URI host)."""
    p = warehouse.params(conninfo)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": p["host"],
            "port": int(p["port"]),
            "login": p["user"],
            "password": p["password"],
            "schema": p["dbname"],
        }
    )


def environment(airflow_home: Path | None = None, conninfo: str | None = None) -> dict[str, str]:
    """os.environ plus what local Airflow needs.

    With `airflow_home` given (tests, templates), everything that lives in the home points there;
    otherwise values the caller already set (docker-compose, a user's shell) are kept.
    """
    root = project_root()
    explicit = airflow_home is not None
    airflow_home = airflow_home or home()
    conninfo = conninfo or warehouse.url()
    env = dict(os.environ)
    per_home = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
    }
    defaults = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        # astronomer-cosmos reports every task's success to its vendor over HTTPS: a finance
        # pipeline sends nothing out, and offline each attempt (TLS set-up, a DNS lookup that
        # fails) cost ~0.07 s of every dbt task (bench/RESULTS.md).
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "METERLINE_HOME": str(root),
    }
    for key, value in per_home.items():
        env[key] = value if explicit else env.get(key, value)
    for key, value in defaults.items():
        env.setdefault(key, value)
    # `airflow standalone` starts its components as `airflow` by name: this environment's first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    # One LocalExecutor worker per task slot: Airflow's default (32) is ~6 GiB of idle workers.
    env.setdefault("AIRFLOW__CORE__PARALLELISM", str(max(2, os.cpu_count() or 2)))
    env["WAREHOUSE_URL"] = conninfo
    # What tasks and cosmos's dbt profile use (meterline.connections): the same warehouse.
    env["AIRFLOW_CONN_WAREHOUSE"] = warehouse_connection(conninfo)
    # The failure alerts' webhook (meterline.alerts), unless the connection is defined already.
    if env.get("METERLINE_ALERT_WEBHOOK_URL"):
        env.setdefault(
            "AIRFLOW_CONN_ALERT_WEBHOOK",
            json.dumps({"conn_type": "http", "host": env["METERLINE_ALERT_WEBHOOK_URL"]}),
        )
    return env


def airflow_executable() -> str:
    return shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"


def run(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([airflow_executable(), *args], env=env, check=True, **kwargs)


def migrate(env: dict[str, str]) -> bool:
    """`airflow db migrate` once per home and Airflow version; True when it ran."""
    from importlib.metadata import version

    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    marker = airflow_home / f".migrated-{version('apache-airflow-core')}"
    if marker.exists():
        return False
    run(["db", "migrate"], env, stdout=subprocess.DEVNULL)
    marker.touch()
    return True


def dags_test(
    dag_id: str,
    env: dict[str, str],
    *,
    logical_date: str | None = None,
    conf: dict | None = None,
) -> subprocess.CompletedProcess:
    """One DAG run in-process with `airflow dags test`; raises if the run does not succeed.

    The CLI prints the run's final state; a failed task does not always change its exit code,
    so the state line is what decides.
    """
    args = ["dags", "test", dag_id]
    if logical_date:
        args.append(logical_date)
    if conf:
        args += ["--conf", json.dumps(conf)]
    # Parse only the DAG's own file when it is named after the DAG (ours are): the other DAG files,
    # the cosmos-rendered transform among them, cost seconds of every run's start-up. After the
    # positional logical date: the CLI takes no positional after an option.
    dag_file = Path(env.get("AIRFLOW__CORE__DAGS_FOLDER") or project_root() / "dags") / f"{dag_id}.py"
    if dag_file.is_file():
        args += ["--dagfile-path", str(dag_file)]
    done = subprocess.run([airflow_executable(), *args], env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "state=success" not in output:
        tail = "\n".join(output.splitlines()[-60:])
        raise RuntimeError(f"airflow dags test {dag_id} did not succeed (exit {done.returncode}):\n{tail}")
    return done


def month_plan(period_start: date, days: int) -> list[dict]:
    """A month's DAG runs in the order a month runs them, each named as the scheduler names it
    (meterline.dagrun makes them those scheduled runs): the catalog sync at midnight on the 1st,
    one events run per day partition (logical date = the day it loads; its data interval is that
    day), then on the day after the last, the CUR delivery and the budgets refresh at midnight,
    the nightly transform and the close of the period at 04:00 (the close's gate blocks on budget
    data older than 24 h)."""
    last = period_start + timedelta(days=days - 1)
    after = last + timedelta(days=1)
    close_at = f"{after}T04:00:00+00:00"
    return [
        {"dag_id": "sync_billing_catalog", "logical_date": f"{period_start}T00:00:00+00:00"},
        {"dag_id": "ingest_aws_cur", "logical_date": f"{after}T00:00:00+00:00"},
        *(
            {"dag_id": "ingest_usage_events", "logical_date": f"{period_start + timedelta(days=i)}T00:00:00+00:00"}
            for i in range(days)
        ),
        {"dag_id": "transform_warehouse", "logical_date": close_at},
        {"dag_id": "refresh_budgets", "logical_date": f"{after}T00:00:00+00:00"},
        {"dag_id": "close_billing_period", "logical_date": close_at, "conf": {"period": f"{period_start:%Y-%m}"}},
    ]


def run_plan(runs: list[dict], env: dict[str, str], *, echo: bool = False) -> list[tuple[str, str, str]]:
    """Run DAG runs in order through Airflow (`dag.test`) in one process; see meterline.dagrun.

    Returns `(dag_id, logical_date, state)` per run; raises with the log's tail if one failed.
    """
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as plan:
        json.dump(runs, plan, default=str)
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterline.dagrun", plan.name],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    done: list[tuple[str, str, str]] = []
    tail: collections.deque[str] = collections.deque(maxlen=80)
    for line in proc.stdout:
        tail.append(line.rstrip())
        if line.startswith("RUN "):
            _, dag_id, logical_date, state, seconds = line.split()
            done.append((dag_id, logical_date, state))
            if echo:
                print(f"    {dag_id} {logical_date[:16]}: {state} in {float(seconds):.1f} s", flush=True)
        elif echo and line.startswith("START "):
            _, dag_id, logical_date = line.split()
            print(f"    {dag_id} {logical_date[:16]}: started", flush=True)
        elif echo and line.startswith("TASK "):
            _, dag_id, task_id, state, seconds, progress = line.split()
            if int(progress.split("/")[1]) > 3:  # the steps of a long run; a one-task run says enough
                print(f"      [{progress}] {task_id}: {state} in {float(seconds):.1f} s", flush=True)
    proc.wait()
    Path(plan.name).unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"DAG runs stopped (exit {proc.returncode}) after {done[-1:]}:\n" + "\n".join(tail))
    return done
