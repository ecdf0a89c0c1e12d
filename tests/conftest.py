"""Shared fixtures: a real PostgreSQL database per test, a migrated Airflow home per session.

The server is the embedded one (`.warehouse/`) unless `WAREHOUSE_URL` names another; tests never
touch the demo's `meterline` database. Each test gets a database cloned from a template that was
bootstrapped at the start of the session, so it sees the schemas and roles exactly as a fresh
install has them.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterline import airflow_env, warehouse
from meterline.config import project_root

_counter = itertools.count()
_PREFIX = f"mlt_{os.getpid()}"
_RUN_VAR = "METERLINE_TEST_RUN"
_RUN = f"{_PREFIX}:{uuid.uuid4().hex}"


def _in_xdist_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


@pytest.fixture(scope="session")
def server_url() -> str:
    """The warehouse server's URL (its own `meterline` database is left alone)."""
    return warehouse.url()


@pytest.fixture(scope="session")
def template_db(server_url: str):
    name = f"{_PREFIX}_template"
    warehouse.drop_database(server_url, name)
    # One bootstrap at a time: pytest-xdist's workers start theirs together, and two at once
    # raced on the cluster-wide roles ("tuple concurrently updated" from ALTER ROLE).
    lock_file = _shared_marker(_test_run()[1], "bootstrap").with_suffix(".lock")
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        warehouse.bootstrap(warehouse.with_database(server_url, name))
    yield name
    warehouse.drop_database(server_url, name)
    if not _in_xdist_worker():
        lock_file.unlink(missing_ok=True)


_in_use: set[str] = set()


def _copy_of(server_url: str, template: str, monkeypatch: pytest.MonkeyPatch):
    """A new database copied from `template` for one test, `WAREHOUSE_URL` pointing at it.

    Each test's copy has the same name as the last test's (it was dropped): dbt's partial-parse
    cache is valid only for the database it was written for, and a new name per test made every
    test's first dbt call parse the whole project."""
    name = f"{_PREFIX}_test"
    if name in _in_use:  # a test with two copies at once
        name = f"{_PREFIX}_{next(_counter)}"
    _in_use.add(name)
    warehouse.drop_database(server_url, name)
    warehouse.create_database(server_url, name, template=template)
    conninfo = warehouse.with_database(server_url, name)
    monkeypatch.setenv("WAREHOUSE_URL", conninfo)
    try:
        yield conninfo
    finally:
        warehouse.drop_database(server_url, name)
        _in_use.discard(name)


@pytest.fixture
def warehouse_url(server_url: str, template_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, bootstrapped database for this test; `WAREHOUSE_URL` points at it."""
    yield from _copy_of(server_url, template_db, monkeypatch)


def _test_run() -> tuple[str, str]:
    """The whole test run's database prefix and token, shared by its pytest-xdist workers: the
    controller's (set in pytest_configure, inherited by the workers), or this process's when it
    runs alone. The token is new each run, so a marker left by a run that crashed never counts."""
    prefix, _, token = (os.environ.get(_RUN_VAR) or _RUN).partition(":")
    return prefix, token


def _shared_marker(token: str, what: str) -> Path:
    """The file that says the run's shared database `what` is built (it holds the server's URL,
    for the controller to drop it at the end); its lock file beside it."""
    return Path(tempfile.gettempdir()) / f"meterline-test-{token}-{what}.built"


def _shared_database(server_url: str, what: str, template: str, build) -> Iterator[str]:
    """A database built once for the whole test run from `template` by `build(url)`, named
    `<run>_<what>`; tests copy it, never use it directly.

    Under pytest-xdist the first worker to need it builds it while the others wait on a file
    lock, then every worker copies the same database. The controller drops it when the run ends
    (pytest_unconfigure): a worker that finished cannot know whether another still copies it."""
    prefix, token = _test_run()
    name = f"{prefix}_{what}"
    marker = _shared_marker(token, what)
    with open(marker.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            warehouse.drop_database(server_url, name)  # a build that failed half-way
            warehouse.create_database(server_url, name, template=template)
            build(warehouse.with_database(server_url, name))
            _disconnect(server_url, name)
            marker.write_text(server_url)
    yield name
    if not _in_xdist_worker():
        warehouse.drop_database(server_url, name)
        marker.unlink(missing_ok=True)
        marker.with_suffix(".lock").unlink(missing_ok=True)


def _disconnect(server_url: str, name: str) -> None:
    """End the sessions a build left open on database `name` (the suites' SQLAlchemy pool keeps
    its connections), which would refuse it as a template: "being accessed by other users"."""
    import psycopg

    with psycopg.connect(warehouse.with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
            [name],
        )


_SHARED = ("month", "gated_month")  # what _shared_database builds, for pytest_unconfigure


@pytest.fixture(scope="session")
def billing_month(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The hand-written month (tests/handwritten_month.py) loaded and built once for the whole
    test run (~40 s of CPU: once, not once per xdist worker), in a database the tests copy
    (`month_url`)."""
    from handwritten_month import build_month

    landing = tmp_path_factory.mktemp("handwritten") / "landing"
    yield from _shared_database(server_url, "month", template_db, lambda url: build_month(url, landing))


@pytest.fixture(scope="session")
def gated_month(server_url: str, billing_month: str) -> Iterator[str]:
    """The built month after the close's suites and a gate that passed (handwritten_month.pass_gate),
    once for the whole test run: the emitter's and the corrections' tests start there, and each
    ran the same suites on its own copy (the gate's records are data: watermarks and the drafts'
    fingerprints, equal in every copy)."""
    from handwritten_month import pass_gate

    yield from _shared_database(server_url, "gated_month", billing_month, pass_gate)


@pytest.fixture
def month_url(server_url: str, billing_month: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh copy of the built hand-written month for this test; `WAREHOUSE_URL` points at it."""
    yield from _copy_of(server_url, billing_month, monkeypatch)


@pytest.fixture
def gated_month_url(server_url: str, gated_month: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh copy of the gated month (`gated_month`) for this test; `WAREHOUSE_URL` points at it."""
    yield from _copy_of(server_url, gated_month, monkeypatch)


@pytest.fixture
def gated_month_db(gated_month_url: str):
    """An autocommit connection to the test's copy of the gated month, acting as the pipeline role."""
    with warehouse.connect(gated_month_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def month_db(month_url: str):
    """An autocommit connection to the test's copy of the month, acting as the pipeline role."""
    with warehouse.connect(month_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def db(warehouse_url: str):
    """An autocommit connection to the test's database, acting as the pipeline role."""
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """An S3-compatible server on localhost (moto's server mode) for this session."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the local S3 server; the AWS variables point boto3 and pyarrow at it.
    Returns `s3://<bucket>`."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"meterline-test-{next(_counter)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}"


@pytest.fixture(scope="session")
def airflow_template(server_url: str) -> Path:
    """An Airflow home migrated once per machine and never run in: copy its `airflow.db` for a
    metadata database with no DAG run in it."""
    template = project_root() / ".airflow" / "test-template"
    template.mkdir(parents=True, exist_ok=True)
    with open(template / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        airflow_env.migrate(airflow_env.environment(template, server_url))
    return template


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, airflow_template: Path) -> Path:
    """A migrated Airflow home for this session's tests, copied from the template. Tests share it
    and leave their runs in it; a test that counts runs copies `airflow_template` instead."""
    home = tmp_path_factory.mktemp("airflow")
    shutil.copy(airflow_template / "airflow.db", home / "airflow.db")
    return home


@pytest.fixture(scope="session")
def focus_venv() -> Path:
    """The FOCUS validator's environment (`.venv-focus/` of the checkout), created under a file
    lock: test processes running side by side (pytest-xdist) must not both create it at once."""
    from meterline import focus

    venv = project_root() / ".venv-focus"
    with open(project_root() / ".venv-focus.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(focus.ValidatorUnavailable):  # the test says why when it validates
            focus.validator_environment(venv)
    return venv


@pytest.fixture(scope="session")
def dbt_manifest(server_url: str) -> Path:
    """The dbt manifest the cosmos DAGs render from, parsed once for this session's target path."""
    from meterline import transform

    transform.ensure_manifest(server_url)
    return transform.manifest_path()


@pytest.fixture
def airflow(airflow_home: Path, warehouse_url: str, dbt_manifest: Path) -> dict[str, str]:
    """The environment for an Airflow subprocess working on this test's database."""
    return airflow_env.environment(airflow_home, warehouse_url)


@pytest.fixture
def month_airflow(airflow_home: Path, month_url: str, dbt_manifest: Path) -> dict[str, str]:
    """The environment for an Airflow subprocess working on this test's copy of the built month."""
    return airflow_env.environment(airflow_home, month_url)


@pytest.fixture
def gated_month_airflow(airflow_home: Path, gated_month_url: str, dbt_manifest: Path) -> dict[str, str]:
    """The environment for an Airflow subprocess working on this test's copy of the gated month."""
    return airflow_env.environment(airflow_home, gated_month_url)


def _main_module_as_in_one_process() -> None:
    """A pytest-xdist worker's `__main__` (execnet's `python -c`) has neither `__spec__` nor
    `__file__`, which pyspark.sql.connect takes for a doctest run and answers with sys.exit(0)
    when its optional dependencies are missing: `import great_expectations` (the close's suites)
    then ended the test with SystemExit instead of the ImportError great_expectations handles.
    Give it the file it has in one process, pytest's own entry point (guarded by `if __name__ ==
    "__main__"`, so a multiprocessing child re-importing it runs nothing)."""
    import importlib.util
    import sys

    main = sys.modules["__main__"]
    if getattr(main, "__spec__", None) is None and not hasattr(main, "__file__"):
        main.__file__ = importlib.util.find_spec("pytest.__main__").origin


def pytest_configure(config: pytest.Config) -> None:
    """In-process Airflow (DagBag tests) reads its config at first import: point it at a
    scratch home and our DAGs before any test imports airflow."""
    root = project_root()
    if _in_xdist_worker():
        _main_module_as_in_one_process()
    elif getattr(config.option, "numprocesses", None):
        # The controller of a pytest-xdist run: its name for the run's shared databases
        # (billing_month, gated_month), inherited by the workers it starts.
        os.environ[_RUN_VAR] = _RUN
    # Each pytest-xdist worker its own scratch home (a worker inherits the controller's variables).
    if _in_xdist_worker() or "AIRFLOW_HOME" not in os.environ:
        os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="meterline-airflow-")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(root / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(root / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # A failing task in `airflow dags test` retries: fail fast instead of waiting real back-off.
    os.environ["METERLINE_RETRY_DELAY_SECONDS"] = "1"
    # dbt writes manifests and partial-parse state under target/: one folder per test session,
    # so sessions running side by side (and the demo) never read each other's half-written files.
    scratch = Path(tempfile.mkdtemp(prefix="meterline-dbt-"))
    os.environ["METERLINE_DBT_TARGET_PATH"] = str(scratch / "target")
    os.environ["DBT_LOG_PATH"] = str(scratch / "logs")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller of a pytest-xdist run drops the run's shared databases, its workers done."""
    if _in_xdist_worker() or os.environ.get(_RUN_VAR) != _RUN:
        return
    prefix, token = _test_run()
    for what in reversed(_SHARED):  # the gated month was copied from the month
        marker = _shared_marker(token, what)
        if marker.exists():
            warehouse.drop_database(marker.read_text(), f"{prefix}_{what}")
            marker.unlink()
        marker.with_suffix(".lock").unlink(missing_ok=True)
    _shared_marker(token, "bootstrap").with_suffix(".lock").unlink(missing_ok=True)


# What each module's tests cost, in seconds, in the clean-clone CI run of 2026-12-02 (load 1-4;
# the slowest first). Only the order of the run depends on it: the costliest modules start first,
# so that with pytest-xdist (`--dist loadscope`: a module runs whole on one worker, its
# module-scoped fixtures built once) the run does not end on one long module. A module not named
# here is costed by its marks.
_MODULE_COST = {
    "tests/dags/test_monthly_close_end_to_end.py": 335,
    "tests/integration/spark/test_engine_equality.py": 260,
    "tests/dags/test_transform_warehouse_dag.py": 165,
    "tests/integration/test_gate.py": 170,
    "tests/integration/test_analyst_queries.py": 120,
    "tests/dags/test_demo_runs_then_scheduler.py": 85,
    "tests/dags/test_ingest_aws_cur_dag.py": 82,
    "tests/dags/test_backfill_ingest_usage_events.py": 80,
    "tests/integration/test_emit.py": 80,
    "tests/dags/test_close_handwritten_month.py": 57,
    "tests/integration/test_gate_cli.py": 55,
    "tests/dags/test_ingest_usage_events_dag.py": 52,
    "tests/dags/test_close_blocked_month.py": 50,
    "tests/integration/events/test_events_usage_models.py": 50,
    "tests/integration/test_emit_dbt.py": 47,
    "tests/integration/test_as_of.py": 45,
    "tests/dags/test_sync_billing_catalog_dag.py": 44,
    "tests/dags/test_airflow_standalone.py": 42,
    "tests/integration/test_pricing_properties.py": 40,
    "tests/dags/test_corrections_dag.py": 39,
    "tests/integration/cur/test_focus_real_month.py": 35,
    "tests/integration/test_access.py": 35,
    "tests/dags/test_budgets_dag.py": 56,
    "tests/dags/test_payments_dag.py": 31,
    "tests/integration/test_dbt_project.py": 30,
    "tests/integration/test_invoice_late_usage.py": 28,
}
_MARK_COST = {"slow": 15.0, "integration": 3.0, "dags": 1.0}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Costliest modules first; a module's tests stay together and in their own order."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)

    def cost(module: str) -> float:
        if module in _MODULE_COST:
            return _MODULE_COST[module]
        marks = ({m.name for m in item.iter_markers()} for item in modules[module])
        return sum(max((_MARK_COST.get(m, 0.0) for m in names), default=0.0) for names in marks)

    order = sorted(modules, key=cost, reverse=True)  # stable: equal costs keep collection order
    items[:] = [item for module in order for item in modules[module]]
