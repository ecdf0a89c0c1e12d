"""Benchmark the heavy models on the two engines (WAREHOUSE_ENGINE, docs/spark.md).

One generated month (March 2025: `--events` usage events over 31 day partitions, with the
generator's usual noise, duplicates and late events; a CUR 2.0 delivery of `--cur-rows` line
items) is loaded once by the real loaders into a database on the warehouse server. Each engine
then builds the heavy models (events -> usage_hourly / usage_metered_hourly, CUR line items ->
fact_cost_raw) from a copy of that database, `--repeat` times (full refresh each time):

- postgres: `dbt run --select +tag:heavy --full-refresh`, then `dbt test --select tag:heavy`;
- spark, on a local standalone cluster with 1 and then 2 workers (1 core, `--worker-memory`
  each), started from the pyspark wheel (`meterline.spark.cluster`): lake sync (PostgreSQL ->
  Parquet, the lake emptied before each repeat so every repeat does the same work), `dbt run
  --target spark --full-refresh`, hand-off to marts, `dbt test --select tag:heavy` on
  PostgreSQL (`meterline.spark.engine.build`, which times its stages).

Every engine's marts are compared with PostgreSQL's (row counts and sums) before a figure is
reported: a fast wrong answer is not a result.

`--nightly`: then one more day (April 1, with its late events for the last days of March) is
generated and loaded into each engine's database, and each engine builds the heavy models
incrementally, as a production night does (PostgreSQL: `dbt run --select +tag:heavy`, then the
tests; Spark on the last cluster size: lake sync of what changed, `dbt run --target spark`,
hand-off of the rewritten partitions, the tests), and the marts are compared again.

`--in-place` (for sizes whose database copies would not fit the disk, e.g. 100M events): every
engine builds in the loaded database itself; before each Spark build the heavy models' marts
tables are emptied, so the comparison still checks what Spark handed. `--chunk-days` generates
the month a few days at a time (the generator keeps each call's ground truth in memory); a
re-delivery across the boundary of two chunks is then not generated.

Run: `.venv/bin/python bench/bench_engines.py --events 1000000 --write-results` (on 2 shared
cores: about 30 minutes). It uses its own databases on the warehouse server and its own Spark
home under a temporary folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from _timing import machine, write_section
from psycopg import sql

from meterline import transform, warehouse
from meterline.catalog.load import load_catalog
from meterline.cur import load as cur_load
from meterline.events.load import load_partition
from meterline.landing import Zone
from meterline.synthetic import cur as cur_gen
from meterline.synthetic.catalog import generate_catalog
from meterline.synthetic.events import generate

PERIOD = date(2025, 3, 1)
DAYS = 31
NOW = datetime(2025, 4, 15, tzinfo=UTC)
LOADED = "bench_engines_loaded"
CHECKS = {
    "usage_hourly": "select count(*), sum(event_count), sum(total_tokens) from marts.usage_hourly",
    "usage_metered_hourly": "select count(*), sum(event_count), sum(quantity) from marts.usage_metered_hourly",
    "fact_cost_raw": (
        "select count(*), sum(unblended_cost), sum(billed_cost), sum(amortized_cost) from marts.fact_cost_raw"
    ),
}


def say(message: str) -> None:
    print(f"[bench] {datetime.now(UTC):%H:%M:%S} {message}", file=sys.stderr, flush=True)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def load_month(server: str, landing: Path, events: int, cur_rows: int, chunk_days: int) -> tuple[str, dict[str, float]]:
    """The month generated and loaded by the real loaders into database LOADED."""
    seconds: dict[str, float] = {}
    warehouse.drop_database(server, LOADED)
    url = warehouse.with_database(server, LOADED)
    warehouse.bootstrap(url)
    started = time.perf_counter()
    generate_catalog(str(landing), period=PERIOD, tenants=40, subscriptions=120)
    for first in range(0, DAYS, chunk_days):
        generate(
            str(landing),
            PERIOD + timedelta(days=first),
            min(chunk_days, DAYS - first),
            events_per_day=events // DAYS,
            now=NOW,
            formats=("parquet",),
        )
    month = cur_gen.month(PERIOD, cur_rows)
    cur_gen.write_cur2(Zone(str(landing)), cur_gen.restatement(month, 1, 1, final=True), PERIOD, NOW)
    seconds["generate"] = time.perf_counter() - started
    started = time.perf_counter()
    load_catalog(url, str(landing))
    cur_load.run(url, str(landing))
    for offset in range(DAYS):
        load_partition(date(2025, 3, 1 + offset), landing_url=str(landing), conninfo=url)
    seconds["load"] = time.perf_counter() - started
    return url, seconds


def copy_of(server: str, name: str, in_place: bool) -> str:
    if in_place:
        return warehouse.with_database(server, LOADED)
    warehouse.drop_database(server, name)
    warehouse.create_database(server, name, template=LOADED)
    return warehouse.with_database(server, name)


def empty_heavy_marts(url: str) -> None:
    """In place, Spark's hand-off must refill what PostgreSQL built, or the comparison proves
    nothing."""
    tables = [sql.Identifier("marts", name) for name in CHECKS] + [sql.Identifier("ops", "spark_handoff")]
    with warehouse.connect(url) as conn:
        conn.execute(sql.SQL("truncate {}").format(sql.SQL(", ").join(tables)))


def footprint(url: str, *folders: Path) -> dict[str, str]:
    """What the month takes on disk: the database, and each folder given."""
    with warehouse.connect(url) as conn:
        sizes = {"database": conn.execute("select pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]}
        sizes["raw.events"] = conn.execute("select pg_size_pretty(pg_total_relation_size('raw.events'))").fetchone()[0]
    for folder in folders:
        if folder.exists():
            done = subprocess.run(["du", "-sh", str(folder)], capture_output=True, text=True)
            sizes[folder.name] = done.stdout.split()[0] if done.returncode == 0 else "?"
    return sizes


def checks(url: str) -> dict[str, tuple]:
    with warehouse.connect(url) as conn:
        return {name: tuple(conn.execute(query).fetchone()) for name, query in CHECKS.items()}


def dbt(url: str, args: list[str]) -> float:
    started = time.perf_counter()
    done = transform.run(args, url, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed:\n" + "\n".join(done.stdout.splitlines()[-30:]))
    return time.perf_counter() - started


def postgres_build(url: str, *dbt_args: str) -> dict[str, float]:
    return {
        "dbt_postgres": dbt(url, ["run", "--select", "+tag:heavy", *dbt_args]),
        "dbt_test": dbt(url, ["test", "--select", "tag:heavy", "--indirect-selection", "cautious"]),
    }


def bench_postgres(url: str, repeat: int) -> tuple[list[dict[str, float]], dict]:
    runs = []
    for n in range(repeat):
        run = postgres_build(url, "--full-refresh")
        say(f"postgres run {n + 1}: {run}")
        runs.append(run)
    return runs, checks(url)


class Nightly:
    """One more day, loaded into each engine's database and built incrementally by each."""

    DAY = PERIOD + timedelta(days=DAYS)

    def __init__(self, landing: Path, events: int, pg_url: str) -> None:
        self.landing, self.events, self.pg_url = landing, events, pg_url
        self.result: dict[str, object] = {}

    def load(self, url: str) -> tuple[float, int]:
        started = time.perf_counter()
        done = load_partition(self.DAY, landing_url=str(self.landing), conninfo=url)
        return time.perf_counter() - started, done.rows_loaded

    def __call__(self, spark_url: str) -> None:
        from meterline.spark import engine

        generate(str(self.landing), self.DAY, 1, events_per_day=self.events // DAYS, now=NOW, formats=("parquet",))
        self.result["load"], self.result["events"] = self.load(self.pg_url)
        if spark_url != self.pg_url:
            self.load(spark_url)
        # Without a look-back: the month was loaded minutes before, so the models' look-back (60
        # minutes before the newest load they have seen) would re-read the whole month, which a
        # production night does not (it re-reads the day before as well: see bench/RESULTS.md).
        no_lookback = ("--vars", '{"usage_lookback_minutes": 0}')
        self.result["postgres"] = postgres_build(self.pg_url, *no_lookback)
        expected = checks(self.pg_url)
        say(f"nightly on postgres: {self.result['postgres']}")
        done = engine.build(spark_url, dbt_args=no_lookback)
        self.result["spark"] = done["seconds"]
        say(f"nightly on spark: {done['seconds']}")
        if (found := checks(spark_url)) != expected:
            raise SystemExit(f"the nightly build on spark differs: {found} != {expected}")


def bench_spark(
    url: str,
    repeat: int,
    workers: int,
    worker_memory: str,
    executor_memory: str,
    home: Path,
    *,
    in_place: bool,
    nightly: Nightly | None,
):
    from meterline.spark import cluster, engine

    shutil.rmtree(home, ignore_errors=True)
    os.environ["METERLINE_SPARK_HOME"] = str(home)
    os.environ["WAREHOUSE_ENGINE"] = "spark"
    started = time.perf_counter()
    running = cluster.start(home, workers=workers, worker_memory=worker_memory, executor_memory=executor_memory)
    start_s = time.perf_counter() - started
    say(f"spark cluster with {workers} worker(s) up in {start_s:.1f} s")
    runs = []
    try:
        for n in range(repeat):
            shutil.rmtree(running.lake_dir, ignore_errors=True)
            running.lake_dir.mkdir(parents=True)
            if in_place:
                empty_heavy_marts(url)
            done = engine.build(url, dbt_args=("--full-refresh",))
            runs.append(done["seconds"])
            say(f"spark ({workers} worker(s)) run {n + 1}: {done['seconds']}")
        found = checks(url)
        lake = footprint(url, running.lake_dir, running.warehouse_dir)
        if nightly is not None:
            nightly(url)
        hosts = running.executor_hosts()
    finally:
        cluster.stop(home)
        os.environ["WAREHOUSE_ENGINE"] = "postgres"
    return runs, found, start_s, hosts, lake


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    stages = runs[0].keys()
    result = {stage: statistics.median(r[stage] for r in runs) for stage in stages}
    result["total"] = statistics.median(sum(r.values()) for r in runs)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cur-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="Spark cluster sizes to run, comma-separated")
    parser.add_argument("--worker-memory", default="2g")
    parser.add_argument("--executor-memory", default="1536m")
    parser.add_argument("--nightly", action="store_true", help="then one more day, built incrementally by each")
    parser.add_argument("--in-place", action="store_true", help="no database copies (for sizes the disk cannot copy)")
    parser.add_argument("--chunk-days", type=int, default=DAYS, help="generate the month this many days at a time")
    parser.add_argument("--write-results", action="store_true", help="replace this section of bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.nightly and args.in_place:
        parser.error("--nightly needs a database per engine: not with --in-place")
    # The generator's noise is rejected by design: one warning per bad row is not the benchmark.
    logging.getLogger("meterline.events").setLevel(logging.ERROR)

    server = warehouse.url()
    load_before = uptime()
    results: list[tuple[str, dict[str, float], int]] = []
    sizes = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as scratch:
        landing = Path(scratch) / "landing"
        landing.mkdir()
        say(f"generating and loading {args.events:,} events and {args.cur_rows:,} CUR lines")
        url, loaded = load_month(server, landing, args.events, args.cur_rows, args.chunk_days)
        with warehouse.connect(url) as conn:
            events = conn.execute("select count(*) from raw.events").fetchone()[0]
            cur_lines = conn.execute("select count(*) from raw.cur_line_items").fetchone()[0]
        disk = footprint(url, landing)
        say(f"loaded {events:,} accepted events, {cur_lines:,} CUR lines: {loaded}; on disk {disk}")

        pg_url = copy_of(server, "bench_engines_pg", args.in_place)
        pg_runs, expected = bench_postgres(pg_url, args.repeat)
        results.append(("postgres", medians(pg_runs), len(pg_runs)))
        nightly = Nightly(landing, args.events, pg_url) if args.nightly else None
        notes = []
        for workers in sizes:
            runs, found, start_s, hosts, lake = bench_spark(
                copy_of(server, f"bench_engines_spark{workers}", args.in_place),
                args.repeat,
                workers,
                args.worker_memory,
                args.executor_memory,
                Path(scratch) / f"spark{workers}",
                in_place=args.in_place,
                nightly=nightly if workers == sizes[-1] else None,
            )
            if found != expected:
                raise SystemExit(f"spark with {workers} worker(s) built other figures: {found} != {expected}")
            results.append((f"spark, {workers} worker(s)", medians(runs), len(runs)))
            notes.append(f"{workers} worker(s): cluster start {start_s:.0f} s, executors on {len(hosts)} worker(s)")
            disk |= lake
        for name in ("bench_engines_pg", *(f"bench_engines_spark{w}" for w in sizes), LOADED):
            warehouse.drop_database(server, name)
    load_after = uptime()

    stages = ["lake_sync", "dbt_spark", "dbt_postgres", "handoff", "dbt_test", "total"]
    command = (
        f"--events {args.events} --cur-rows {args.cur_rows} --repeat {args.repeat} --workers {args.workers} "
        f"--worker-memory {args.worker_memory} --executor-memory {args.executor_memory}"
        + (" --nightly" if args.nightly else "")
        + (" --in-place" if args.in_place else "")
        + (f" --chunk-days {args.chunk_days}" if args.chunk_days != DAYS else "")
    )
    lines = [
        "## Heavy models: PostgreSQL vs Spark (bench/bench_engines.py)",
        "",
        f"{machine()}; 2 shared vCPUs. Command: `.venv/bin/python bench/bench_engines.py {command} --write-results`.",
        f"Month: {events:,} accepted events over 31 days, {cur_lines:,} CUR line items; generated in "
        f"{loaded['generate']:.0f} s, loaded by the real loaders in {loaded['load']:.0f} s"
        " (the same for both engines).",
        "On disk after the builds: " + ", ".join(f"{k} {v}" for k, v in disk.items()) + ".",
        f"Load before: `{load_before}`; after: `{load_after}`.",
        "Every Spark build's marts equal PostgreSQL's (row counts and sums of usage_hourly, "
        "usage_metered_hourly, fact_cost_raw) or the bench fails.",
        "",
        "Full build of the heavy models (full refresh), median seconds per stage:",
        "",
        "| engine | runs | " + " | ".join(stages) + " |",
        "|---|---|" + "---|" * len(stages),
    ]
    for name, median, count in results:
        cells = [f"{median[s]:.1f}" if s in median else "" for s in stages]
        lines.append(f"| {name} | {count} | " + " | ".join(cells) + " |")
    lines += ["", "Spark: " + "; ".join(notes) + "."]
    if nightly is not None:
        night = nightly.result
        lines += [
            "",
            f"Nightly: one more day ({Nightly.DAY}, {night['events']:,} accepted events, loaded in "
            f"{night['load']:.1f} s), built incrementally; seconds per stage (one run each):",
            "",
            "| engine | " + " | ".join(stages) + " |",
            "|---|" + "---|" * len(stages),
        ]
        for name, seconds in (("postgres", night["postgres"]), (f"spark, {sizes[-1]} worker(s)", night["spark"])):
            total = {**seconds, "total": sum(seconds.values())}
            lines.append(f"| {name} | " + " | ".join(f"{total[s]:.1f}" if s in total else "" for s in stages) + " |")
    print("\n".join(lines))
    if args.write_results:
        write_section("bench_engines", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
