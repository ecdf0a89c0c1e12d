"""Every DAG file imports cleanly and follows the project's DAG policy."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

from meterline.alerts import FailureNotifier
from meterline.config import project_root

pytestmark = pytest.mark.dags

DAGS_DIR = project_root() / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
# Modules the DAG processor must not import every 30 s at module level of a DAG file.
HEAVY = {
    "pandas",
    "pyarrow",
    "boto3",
    "psycopg",
    "psycopg2",
    "sqlalchemy",
    "great_expectations",
    "dbt",
    "numpy",
    "matplotlib",
    "weasyprint",
    "meterline.warehouse",
}

# Tasks that must not retry: a decision that failed should be looked at, not repeated.
# The gate's decision needs a person; cosmos's watcher producer cannot run its build twice (a
# second attempt skips, and the models' tasks would then each rebuild their model alone).
NO_RETRY = {("close_billing_period", "gate"), ("transform_warehouse", "dbt.dbt_producer_watcher")}


@pytest.fixture(scope="module")
def dagbag(dbt_manifest):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found in dags/"


def test_every_dag_file_defines_a_dag(dagbag):
    files_with_dags = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    assert files_with_dags == {p.name for p in DAG_FILES}


def test_dag_policy(dagbag):
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not (dag.doc_md or "").strip():
            problems.append(f"{dag_id}: no doc_md")
        for task in dag.tasks:
            if not task.owner or task.owner == "airflow":
                problems.append(f"{dag_id}.{task.task_id}: owner not set")
            if task.retries < 2 and (dag_id, task.task_id) not in NO_RETRY:
                problems.append(f"{dag_id}.{task.task_id}: retries {task.retries} < 2")
            if task.retries and task.retry_delay < timedelta(seconds=1):
                problems.append(f"{dag_id}.{task.task_id}: no retry delay")
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            if not any(isinstance(callback, FailureNotifier) for callback in callbacks):
                problems.append(f"{dag_id}.{task.task_id}: no failure alert (use meterline.config.dag_defaults())")
    assert problems == []


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_catchup_is_set_on_purpose(path: Path):
    tree = ast.parse(path.read_text())
    keywords = {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords}
    assert "catchup" in keywords, f"{path.name}: say catchup=True or catchup=False"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_imports_at_module_level(path: Path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in tree.body:  # module level only; imports inside task functions are fine
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    heavy = {name for name in imported if name in HEAVY or name.split(".")[0] in HEAVY}
    assert heavy == set(), f"{path.name} imports {heavy} at module level"


def test_tasks_send_no_usage_reports(tmp_path: Path):
    """Airflow as `meterline airflow` and the demo start it sends no vendor telemetry: cosmos
    would report every dbt task's success over HTTPS (a finance pipeline sends nothing out, and
    offline each attempt cost a TLS set-up and a failed DNS lookup per task)."""
    import subprocess
    import sys

    from meterline import airflow_env

    env = airflow_env.environment(tmp_path, "postgresql://nobody@127.0.0.1:1/none")
    probe = "from cosmos import telemetry; print(telemetry.should_emit())"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
