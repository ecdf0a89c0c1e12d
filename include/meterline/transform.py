"""Running the dbt project against the warehouse, with credentials passed by environment.

Light to import (the DAG files use its paths): the warehouse module is imported when needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path

from meterline.config import project_root
from meterline.errors import InputError

# What the nightly transform (transform_warehouse) builds: staging, usage and cost. Invoices,
# reconciliation for a period and emission belong to the monthly close (meterline.close).
NIGHTLY_SELECTION = [
    "path:models/staging",
    "path:models/marts/usage",
    "path:models/intermediate/cost",
    "path:models/marts/cost",
]


class ChecksFailed(InputError):
    """dbt ran, and data tests failed: the data is wrong, a re-run fails the same way."""


def project_dir() -> Path:
    return project_root() / "dbt_project"


def profile_env(conninfo: str | None = None) -> dict[str, str]:
    """The variables `dbt_project/profiles.yml` reads, from the warehouse URL. The password goes
    in a DBT_ENV_SECRET_ variable, which dbt scrubs from its logs."""
    from meterline import warehouse

    p = warehouse.params(conninfo or warehouse.url())
    return {
        "DBT_PROFILES_DIR": str(project_dir()),
        "DBT_PROJECT_DIR": str(project_dir()),
        "METERLINE_DB_HOST": p["host"],
        "METERLINE_DB_PORT": p["port"],
        "METERLINE_DB_USER": p["user"],
        "DBT_ENV_SECRET_METERLINE_DB_PASSWORD": p["password"],
        "METERLINE_DB_NAME": p["dbname"],
    }


def environment(conninfo: str | None = None) -> dict[str, str]:
    """For our own dbt calls: the profile variables (the `spark` target's too when
    WAREHOUSE_ENGINE=spark), and the target folder (see target_dir)."""
    from meterline.spark import engine

    spark = engine.profile_env() if engine.engine() == "spark" else {}
    return dict(os.environ) | profile_env(conninfo) | spark | {"DBT_TARGET_PATH": str(target_dir())}


def target_dir() -> Path:
    """Where our dbt calls write manifests and run results. `METERLINE_DBT_TARGET_PATH` moves it
    (tests use one per session). It is deliberately not DBT_TARGET_PATH: cosmos runs dbt in a
    copy of the project and keeps dbt's partial-parse cache there, which that variable defeats."""
    configured = os.environ.get("METERLINE_DBT_TARGET_PATH") or os.environ.get("DBT_TARGET_PATH")
    return Path(configured or project_dir() / "target")


def manifest_path() -> Path:
    """Where `dbt parse` writes the manifest the Airflow DAGs render their dbt tasks from."""
    return target_dir() / "manifest.json"


def _project_files() -> list[Path]:
    root = project_dir()
    files = [root / "dbt_project.yml", root / "profiles.yml"]
    for folder in ("models", "macros", "snapshots", "seeds", "tests"):
        files += [p for p in (root / folder).rglob("*") if p.is_file()]
    return files


def ensure_manifest(conninfo: str | None = None) -> bool:
    """Run `dbt parse` when the manifest is missing or older than a project file; True if it ran.

    The DAG processor imports DAG files every 30 s: it must read a manifest, never run dbt.
    """
    manifest = manifest_path()
    if manifest.exists():
        built = manifest.stat().st_mtime
        if all(p.stat().st_mtime <= built for p in _project_files()):
            return False
    run(["parse", "--quiet"], conninfo)
    return True


def dbt_executable() -> str:
    return shutil.which("dbt", path=str(Path(sys.executable).parent)) or "dbt"


def as_of_instant(value: datetime | date) -> datetime:
    """A run's as-of instant in UTC: a date means its midnight UTC, a naive datetime is UTC."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# How a run's as-of instant reaches dbt (macros/as_of.sql): an environment variable, not a
# `--vars`. dbt re-parses the whole project whenever its vars differ from the last call's, and a
# close's as-of differs from every earlier one; an env var read only when dbt executes leaves the
# parse, and its partial-parse cache, the same for every as-of.
AS_OF_ENV = "METERLINE_AS_OF"


def as_of_env(as_of: datetime | date) -> dict[str, str]:
    """The environment that makes `as_of` the instant a dbt call is as of."""
    return {AS_OF_ENV: as_of_instant(as_of).isoformat()}


def failed_tests(args: list[str], since: float) -> list[str] | None:
    """The data tests that failed in the `dbt build|test` just run, as `name: N failing rows`;
    None when its results are not there (dbt stopped before), or when something other than a
    test failed (a model's error, a database error): that may pass on a retry."""
    target = Path(args[args.index("--target-path") + 1]) if "--target-path" in args else target_dir()
    path = target / "run_results.json"
    if not args or args[0] not in ("build", "test") or not path.exists() or path.stat().st_mtime < since:
        return None
    results = json.loads(path.read_text())["results"]
    bad = [r for r in results if r["status"] not in ("success", "pass", "warn", "skipped")]
    if not bad or any(r["status"] != "fail" or not r["unique_id"].startswith("test.") for r in bad):
        return None
    return [f"{r['unique_id'].split('.')[2]}: {r.get('failures')} failing rows" for r in bad]


def run(
    args: list[str],
    conninfo: str | None = None,
    *,
    as_of: datetime | date | None = None,
    check: bool = True,
    **kwargs,
) -> subprocess.CompletedProcess:
    """`dbt <args>` in the project folder. When dbt fails (and `check`): ChecksFailed naming each
    failed data test and its count of failing rows when that is why, else CalledProcessError.

    `as_of` is the instant the run is as of (METERLINE_AS_OF, see as_of_env): required by the time-relative models
    (drafts, quotas, budgets), which never read the wall clock."""
    env = environment(conninfo) | (as_of_env(as_of) if as_of is not None else {})
    started = datetime.now(UTC).timestamp()
    done = subprocess.run([dbt_executable(), *args], cwd=project_dir(), env=env, **kwargs)
    if check and done.returncode:
        if failed := failed_tests(args, started):
            raise ChecksFailed(f"dbt {args[0]}: {len(failed)} data test(s) failed: {'; '.join(failed)}")
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done


@contextmanager
def scratch_target() -> Iterator[Path]:
    """A target folder of its own for one dbt call (its manifest and results are not the DAGs'),
    holding dbt's partial-parse cache, so the call parses only what changed since the last one.

    The cache dbt leaves there goes back to the shared target folder: without it, when that
    folder had no cache, or one dbt could not use (written for another database: dbt re-parses
    when the profile changes), every call parsed the whole project again (~6 s of CPU each)."""
    with tempfile.TemporaryDirectory(prefix="meterline-dbt-") as scratch:
        cache = target_dir() / "partial_parse.msgpack"
        used = Path(scratch) / cache.name
        if cache.exists():
            shutil.copy2(cache, used)
        before = used.stat().st_mtime_ns if used.exists() else None
        yield Path(scratch)
        if used.exists() and used.stat().st_mtime_ns != before:
            from meterline.landing import Zone  # written whole (a rename): a reader sees old or new

            Zone(str(cache.parent)).write_bytes(cache.name, used.read_bytes())


def run_for_results(
    args: list[str], conninfo: str | None = None, *, as_of: datetime | date | None = None
) -> tuple[list[dict] | None, str]:
    """`dbt <args>` with its own target folder: the nodes' results (run_results.json `results`;
    None when dbt did not get that far) and the tail of its output, for the message."""
    with scratch_target() as scratch:
        args = [*args, "--target-path", str(scratch)]
        done = run(args, conninfo, as_of=as_of, check=False, capture_output=True, text=True)
        results_file = scratch / "run_results.json"
        results = json.loads(results_file.read_text())["results"] if results_file.exists() else None
    return results, "\n".join((done.stdout + done.stderr).splitlines()[-30:])
