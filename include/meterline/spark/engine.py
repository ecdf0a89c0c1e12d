"""WAREHOUSE_ENGINE: which engine builds the heavy models (dbt tag `heavy`: usage_hourly,
usage_metered_hourly, fact_cost_raw and the staging views they read), and the Spark build:
lake sync -> dbt on Spark -> hand-off -> their tests on PostgreSQL.

`postgres` (the default): dbt-postgres builds everything, as before. `spark`: the heavy models
build on a Spark cluster (SPARK_THRIFT_URL, else the local cluster `meterline spark start` runs)
and reach PostgreSQL's `marts` through the hand-off; every dbt run on PostgreSQL then leaves them
out (`postgres_exclusions`), and the billing models read what Spark built.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from meterline.errors import InputError

log = logging.getLogger(__name__)

ENGINES = ("postgres", "spark")
HEAVY = "tag:heavy"


def engine() -> str:
    name = (os.environ.get("WAREHOUSE_ENGINE") or "postgres").strip().lower()
    if name not in ENGINES:
        raise InputError(f"WAREHOUSE_ENGINE={name!r}: expected one of {', '.join(ENGINES)}")
    return name


def postgres_exclusions() -> list[str]:
    """What a dbt build on PostgreSQL leaves out: the heavy models when Spark builds them."""
    return ["--exclude", HEAVY] if engine() == "spark" else []


def thrift_address() -> tuple[str, int]:
    """The Thrift server dbt-spark and the hand-off talk to: SPARK_THRIFT_URL
    (`thrift://host:port`), else the local cluster's."""
    if configured := os.environ.get("SPARK_THRIFT_URL"):
        parts = urlsplit(configured)
        if parts.scheme != "thrift" or not parts.hostname:
            raise InputError(f"SPARK_THRIFT_URL={configured!r}: expected thrift://host:port")
        return parts.hostname, parts.port or 10000
    from meterline.spark import cluster

    running = cluster.load()
    if running is None:
        raise InputError(
            "WAREHOUSE_ENGINE=spark but no SPARK_THRIFT_URL and no local cluster: run `meterline spark start`"
        )
    return cluster.HOST, running.thrift_port


def lake_dir() -> Path:
    """Where the raw tables' Parquet files go: SPARK_LAKE_DIR (a path every Spark executor reads
    the same, e.g. a shared mount), else the local cluster's `lake/`."""
    if configured := os.environ.get("SPARK_LAKE_DIR"):
        return Path(configured)
    from meterline.spark import cluster

    running = cluster.load()
    return running.lake_dir if running else cluster.default_home() / "lake"


def profile_env() -> dict[str, str]:
    """The variables profiles.yml's `spark` target reads."""
    host, port = thrift_address()
    return {"METERLINE_SPARK_HOST": host, "METERLINE_SPARK_PORT": str(port)}


def connect():
    """A DB-API cursor on the Thrift server (PyHive, which dbt-spark's thrift method uses too)."""
    from pyhive import hive

    host, port = thrift_address()
    return hive.connect(host=host, port=port, username="meterline").cursor()


def _ensure_postgres_tables(conninfo: str) -> None:
    """Create the heavy models' tables in marts, empty, with dbt-postgres from the same model
    files, where they do not exist yet: their types and indexes are PostgreSQL's own."""
    from meterline import warehouse
    from meterline.spark.handoff import HEAVY_MODELS

    with warehouse.connect(conninfo) as conn:
        missing = [
            m.name
            for m in HEAVY_MODELS
            if conn.execute("select to_regclass(%s)", [f"marts.{m.name}"]).fetchone()[0] is None
        ]
    if missing:
        # Their parents first (views over raw, which stays in PostgreSQL), built normally: an
        # --empty view would keep its `limit 0`.
        _dbt(["run", "--select", f"+{HEAVY}", "--exclude", HEAVY], conninfo)
        _dbt(["run", "--select", *missing, "--empty"], conninfo)


def _dbt(args: list[str], conninfo: str) -> None:
    """dbt, its output kept; on failure an error naming the step with dbt's last lines."""
    import subprocess

    from meterline import transform

    try:
        transform.run(args, conninfo, capture_output=True, text=True)
    except subprocess.CalledProcessError as failed:
        tail = "\n".join(((failed.stdout or "") + (failed.stderr or "")).splitlines()[-25:])
        raise RuntimeError(f"dbt {' '.join(args)} failed:\n{tail}") from None


def build(conninfo: str, *, dbt_args: tuple[str, ...] = ()) -> dict[str, object]:
    """Build the heavy models on Spark and hand them to PostgreSQL; their tests then run on
    PostgreSQL, against what was handed. Returns what each step did and its seconds
    (`dbt_args`, e.g. `--full-refresh`, go to the Spark run)."""
    import time

    from meterline.spark import handoff, lake

    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[stage] = round(now - started, 2)
        started = now

    spark = connect()
    synced = lake.sync(conninfo, lake_dir(), spark)
    lap("lake_sync")
    _dbt(["run", "--target", "spark", "--select", f"+{HEAVY}", *dbt_args], conninfo)
    lap("dbt_spark")
    _ensure_postgres_tables(conninfo)
    handed = handoff.run(conninfo, spark)
    lap("handoff")
    # Tests over the heavy models alone; those that also read a billing model (allocation
    # conserves cost) run with the PostgreSQL build that builds the latter.
    _dbt(["test", "--select", HEAVY, "--indirect-selection", "cautious"], conninfo)
    lap("dbt_test")
    log.info("spark build: lake %s, handed %s, seconds %s", synced, handed, seconds)
    return {"lake": synced, "handed": handed, "seconds": seconds}
