"""`make airflow` serves the UI: `meterline airflow standalone` with nothing of the venv on PATH
starts every component and answers on its port; a SIGTERM stops all of it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as answer:
            return json.load(answer)
    except OSError:
        return {}


def test_standalone_serves_the_ui_and_stops_on_sigterm(
    airflow_template: Path, warehouse_url: str, dbt_manifest, tmp_path
):
    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copy(airflow_template / "airflow.db", home / "airflow.db")
    port = _free_port()
    # As a user's shell after `make airflow`: the venv is not activated, only the system's PATH.
    env = {
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(home),
        "WAREHOUSE_URL": warehouse_url,
        "METERLINE_DBT_TARGET_PATH": os.environ["METERLINE_DBT_TARGET_PATH"],
        "AIRFLOW__API__PORT": str(port),
        # The scheduler's log server (8793 by default) too: another Airflow on this machine may hold it.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
    }
    meterline = Path(sys.executable).parent / "meterline"
    log = (tmp_path / "standalone.log").open("w")
    proc = subprocess.Popen(
        [str(meterline), "airflow", "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 240
        health: dict = {}
        while time.monotonic() < deadline and proc.poll() is None:
            health = _health(port)
            if all(health.get(c, {}).get("status") == "healthy" for c in COMPONENTS):
                break
            time.sleep(3)
        output = (tmp_path / "standalone.log").read_text()
        statuses = {c: health.get(c, {}).get("status") for c in COMPONENTS}
        assert statuses == dict.fromkeys(COMPONENTS, "healthy"), output[-3000:]
        assert "FileNotFoundError" not in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
        family = psutil.Process(proc.pid).children(recursive=True)
    finally:
        # Stopped as a user's `kill` would; whatever is left of it is killed, so no test leaves
        # an Airflow running.
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=90)
        stopped = proc.returncode is not None
        _, alive = psutil.wait_procs(family, timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # `meterline airflow standalone` ended, and with it every process it had started.
    assert stopped and [p.pid for p in alive] == []
