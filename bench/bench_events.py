"""Benchmark the usage-event loader and the incremental usage_hourly build.

1. Loader vs floor: one generated day of `--events` events (default 1M, with the generator's
   usual noise) is loaded by `meterline.events.load.load_partition` into an empty `raw.events`,
   `--repeat` times; the floor is a raw `COPY` of the same accepted rows into an unindexed table
   with the same column types, measured in the same run. Reported for an all-Parquet day and for a
   day of half Parquet, half gzipped JSON Lines, and for the Parquet day loaded onto
   `--history-days` earlier days already in raw.events (the same rows under new keys): the unique
   index a load maintains and probes is then that much larger.
2. Incremental build: `--history-events` events per day for 31 days of March 2025. The
   incremental `usage_hourly` build after loading day 2 (1 day of history), day 8 (7 days: late
   events reach 1-4 days back, so from here on a night re-aggregates as many hours) and day 31
   (30 days of history) is timed, `--repeat` times each (each repeat re-does the same hours).
   The loads of a bench follow each other within minutes, where nightly loads are a day apart:
   the builds run with `usage_lookback_minutes: 0`, so they re-aggregate what the nightly build
   would — the hours of the newly loaded day.

3. With `--days N` (only this): days 1..N of `--events` events each, generated day by day and
   loaded one onto the other, each after a checkpoint (a nightly load follows one); per day the
   loader's time next to a raw COPY of the same accepted rows into an unindexed table (text and
   binary), measured right after it; the days in `--repeat-days` are loaded `--repeat` times.
   Does a day's load stay flat as raw.events' history (and its unique key's index) grows?

Run: `.venv/bin/python bench/bench_events.py` (about 10 minutes on 2 cores); it prints a
Markdown table for bench/RESULTS.md. It uses its own databases on the warehouse server.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from _timing import dbt_timed
from psycopg import sql

from meterline import transform, warehouse
from meterline.catalog.load import load_catalog
from meterline.events import SUFFIXES, partition_prefix
from meterline.events.load import load_partition
from meterline.landing import Zone
from meterline.synthetic.catalog import generate_catalog
from meterline.synthetic.events import generate

NOW = datetime(2025, 4, 15, tzinfo=UTC)
DAY = date(2025, 3, 15)
EVENT_COLUMNS = sql.SQL(", ").join(
    map(
        sql.Identifier,
        ("event_id", "idempotency_key", "subscription_id", "event_type", "properties", "timestamp", "signature",
         "source_file", "line_no", "partition_date", "loaded_at"),
    )
)  # fmt: skip


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def fresh(name: str, landing: str) -> str:
    server = warehouse.url()
    warehouse.drop_database(server, name)
    url = warehouse.with_database(server, name)
    warehouse.bootstrap(url)
    generate_catalog(landing, period=date(2025, 3, 1), tenants=40, subscriptions=120)
    load_catalog(url, landing)
    return url


def truncate(url: str) -> None:
    with warehouse.connect(url) as conn:
        conn.execute("truncate raw.events, raw.events_rejected, raw.ingested_files")


def add_history(url: str, days: int) -> int:
    """Put `days` earlier days into raw.events: the loaded day's rows again under new random keys,
    1..days days earlier (unique index rebuilt once, not maintained per row: this is set-up).
    Returns the rows raw.events then holds besides the day."""
    with warehouse.connect(url) as conn:
        conn.execute("alter table raw.events drop constraint events_idempotency_key_excl")
        conn.execute(
            sql.SQL(
                "insert into raw.events ({cols}) select event_id, 'ik-' || substr(md5(idempotency_key || d), 1, 20),"
                " subscription_id, event_type, properties, \"timestamp\" - d * interval '1 day', signature,"
                " source_file, line_no, partition_date - d, loaded_at - d * interval '1 day'"
                " from raw.events, generate_series(1, %s) d where partition_date = %s order by d desc"
            ).format(cols=EVENT_COLUMNS),
            [days, DAY],
        )
        conn.execute(
            "alter table raw.events add constraint events_idempotency_key_excl"
            " exclude using hash (idempotency_key with =)"
        )
        history = conn.execute("select count(*) from raw.events where partition_date < %s", [DAY]).fetchone()[0]
    without_day(url)
    return history


def without_day(url: str) -> None:
    """raw.events without the benched day (its earlier days kept), vacuumed; no ledger, no rejects."""
    with warehouse.connect(url) as conn:
        conn.execute("delete from raw.events where partition_date = %s", [DAY])
        conn.execute("truncate raw.events_rejected, raw.ingested_files")
    with warehouse.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze raw.events")


def bench_loader(url: str, landing: str, repeat: int, history: bool = False) -> dict:
    runs, stages, result = [], [], None
    for _ in range(repeat):
        without_day(url) if history else truncate(url)
        t0 = time.perf_counter()
        result = load_partition(DAY, landing_url=landing, conninfo=url, now=NOW)
        runs.append(time.perf_counter() - t0)
        stages.append(result.seconds)
    copied: dict[str, bytearray] = {"text": bytearray(), "binary": bytearray()}
    with warehouse.connect(url) as conn, conn.cursor() as cur:
        for fmt, data in copied.items():
            statement = sql.SQL(
                "copy (select {} from raw.events where partition_date = {}) to stdout (format {})"
            ).format(EVENT_COLUMNS, sql.Literal(DAY), sql.SQL(fmt))
            with cur.copy(statement) as out:
                for chunk in out:
                    data += chunk
        conn.execute("drop table if exists raw.bench_events_floor")
        conn.execute("create table raw.bench_events_floor (like raw.events including defaults)")
    floor: dict[str, list[float]] = {"text": [], "binary": []}
    for _ in range(repeat):
        for fmt, data in copied.items():
            with warehouse.connect(url) as conn:
                conn.execute("truncate raw.bench_events_floor")
            statement = sql.SQL("copy raw.bench_events_floor ({}) from stdin (format {})").format(
                EVENT_COLUMNS, sql.SQL(fmt)
            )
            t0 = time.perf_counter()
            with warehouse.connect(url) as conn, conn.cursor().copy(statement) as copy:
                for start in range(0, len(data), 8 << 20):
                    copy.write(data[start : start + (8 << 20)])
            floor[fmt].append(time.perf_counter() - t0)
    loader_s = statistics.median(runs)
    floor_s, binary_s = statistics.median(floor["text"]), statistics.median(floor["binary"])
    return {
        "rows_read": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "loader_s": loader_s,
        "floor_s": floor_s,
        "binary_floor_s": binary_s,
        "loader_eps": result.rows_loaded / loader_s,
        "floor_eps": result.rows_loaded / floor_s,
        "ratio": floor_s / loader_s,
        "binary_ratio": binary_s / loader_s,
        "runs": runs,
        "floor_runs": floor,
        "stages": {k: statistics.median(st.get(k, 0.0) for st in stages) for k in stages[0]},
    }


def _floor(url: str, day: date, repeat: int) -> dict[str, float]:
    """Median seconds of a raw COPY (text and binary) of the rows raw.events holds for `day`
    into an unindexed table with the same column types: the floor, measured in the same run."""
    copied: dict[str, bytearray] = {"text": bytearray(), "binary": bytearray()}
    with warehouse.connect(url) as conn, conn.cursor() as cur:
        for fmt, data in copied.items():
            statement = sql.SQL(
                "copy (select {} from raw.events where partition_date = {}) to stdout (format {})"
            ).format(EVENT_COLUMNS, sql.Literal(day), sql.SQL(fmt))
            with cur.copy(statement) as out:
                for chunk in out:
                    data += chunk
        conn.execute("drop table if exists raw.bench_events_floor")
        conn.execute("create table raw.bench_events_floor (like raw.events including defaults)")
    runs: dict[str, list[float]] = {"text": [], "binary": []}
    for _ in range(repeat):
        for fmt, data in copied.items():
            with warehouse.connect(url) as conn:
                conn.execute("truncate raw.bench_events_floor")
            statement = sql.SQL("copy raw.bench_events_floor ({}) from stdin (format {})").format(
                EVENT_COLUMNS, sql.SQL(fmt)
            )
            t0 = time.perf_counter()
            with warehouse.connect(url) as conn, conn.cursor().copy(statement) as copy:
                for start in range(0, len(data), 8 << 20):
                    copy.write(data[start : start + (8 << 20)])
            runs[fmt].append(time.perf_counter() - t0)
    with warehouse.connect(url) as conn:
        conn.execute("drop table raw.bench_events_floor")
    return {fmt: statistics.median(r) for fmt, r in runs.items()}


def _checkpoint(url: str) -> None:
    """A checkpoint before each load, as a nightly load follows one (checkpoint_timeout is 15 min):
    the first change to each index page after it writes the whole page to the WAL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("checkpoint")


def bench_days(landing: str, days: int, events: int, repeat: int, repeat_days: set[int]) -> list[dict]:
    """Days 1..`days` of `events` events each, loaded one after the other onto what the days before
    left in raw.events (generated day by day: new keys every day, the generator's usual noise).
    Each day's load is timed after a checkpoint and next to its floor; the days in `repeat_days`
    are loaded `repeat` times (the day deleted and raw.events vacuumed in between)."""
    url = fresh("meterline_bench_events_days", landing)
    start = date(2025, 1, 1)
    out = []
    for n in range(1, days + 1):
        day = start + timedelta(days=n - 1)
        t0 = time.perf_counter()
        generate(landing, day, 1, events_per_day=events, files_per_day=4, formats=("parquet",), seed=1000 + n,
                 now=datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC))  # fmt: skip
        generated = time.perf_counter() - t0
        now = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        runs, result = [], None
        for i in range(repeat if n in repeat_days else 1):
            if i:
                with warehouse.connect(url) as conn:
                    conn.execute("delete from raw.events where partition_date = %s", [day])
                    conn.execute("delete from raw.events_rejected where partition_date = %s", [day])
                    conn.execute("delete from raw.ingested_files where partition_date = %s", [day])
                with warehouse.connect(url, autocommit=True) as conn:
                    conn.execute("vacuum analyze raw.events")
            _checkpoint(url)
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            result = load_partition(day, landing_url=landing, conninfo=url, now=now)
            runs.append(time.perf_counter() - t0)
        floor = _floor(url, day, repeat if n in repeat_days else 1)
        with warehouse.connect(url) as conn:
            held, index_bytes = conn.execute(
                "select (select count(*) from raw.events where partition_date < %s), pg_indexes_size('raw.events')",
                [day],
            ).fetchone()
        loader_s = statistics.median(runs)
        row = {
            "day": n,
            "history": held,
            "loaded": result.rows_loaded,
            "duplicates": result.duplicates,
            "loader_s": loader_s,
            "runs": runs,
            "floor_s": floor["text"],
            "binary_floor_s": floor["binary"],
            "ratio": floor["text"] / loader_s,
            "binary_ratio": floor["binary"] / loader_s,
            "index_mb": index_bytes / 2**20,
            "load": load,
            "stages": result.seconds,
        }
        out.append(row)
        say(f"day {n} (generated in {generated:.1f}s): {row}")
        for f in Zone(landing).list(partition_prefix(day), SUFFIXES):
            Zone(landing).delete(f.path)  # 31 generated days would not fit the scratch disk
    return out


def print_days(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores), "
          f"`python bench/bench_events.py --days {args.days} --events {args.events} --repeat {args.repeat}`; "
          f"medians of {args.repeat} on days {sorted(args.repeat_days)}, one run on the others.\n")  # fmt: skip
    print(
        "| day | events already in raw.events | loaded | duplicates | loader s | loader events/s | raw COPY s "
        "| ratio | binary COPY s | ratio to binary | raw.events indexes MB | load avg (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['day']} | {r['history']:,} | {r['loaded']:,} | {r['duplicates']:,} | {r['loader_s']:.2f} "
            f"| {r['loaded'] / r['loader_s']:,.0f} | {r['floor_s']:.2f} | {r['ratio']:.2f}x "
            f"| {r['binary_floor_s']:.2f} | {r['binary_ratio']:.2f}x | {r['index_mb']:.0f} | {r['load']:.1f} |"
        )
    window = [r["ratio"] for r in rows if r["day"] >= 8]
    if window:
        print(f"\nratio days 8..{rows[-1]['day']}: median {statistics.median(window):.2f}x, "
              f"min {min(window):.2f}x, max {max(window):.2f}x")  # fmt: skip


def dbt_usage_hourly(url: str, dbt_vars: str = "{usage_lookback_minutes: 0}") -> tuple[float, float]:
    """Wall time of `dbt run` of usage_hourly and the model's own execution time."""
    wall, nodes = dbt_timed(url, ["run", "--quiet", "--select", "usage_hourly", "--vars", dbt_vars])
    return wall, next(t for node, t in nodes.items() if node.endswith(".usage_hourly"))


def _last_load(url: str) -> str:
    with warehouse.connect(url) as conn:
        return conn.execute("select (max(loaded_at) - interval '1 second')::text from raw.events").fetchone()[0]


def bench_incremental(url: str, landing: str, repeat: int) -> dict:
    march = [date(2025, 3, 1) + timedelta(days=i) for i in range(31)]
    out = {}
    load_partition(march[0], landing_url=landing, conninfo=url, now=NOW)
    transform.run(["run", "--quiet", "--select", "+usage_hourly", "--full-refresh"], url)
    # Late events reach 1-4 days back, so the hours a night re-aggregates stop growing once a
    # week of history is there: day 8 against day 31 is the test of "does not grow with history".
    for history, new_day, backlog in ((1, march[1], []), (7, march[7], march[2:7]), (30, march[30], march[8:30])):
        for day in backlog:
            load_partition(day, landing_url=landing, conninfo=url, now=NOW)
        if backlog:
            dbt_usage_hourly(url)  # the catch-up build of the days in between
        load_partition(new_day, landing_url=landing, conninfo=url, now=NOW)
        first = dbt_usage_hourly(url)
        # Repeats re-aggregate the same hours: everything loaded since day `new_day`'s load.
        since = f"{{usage_lookback_minutes: 0, usage_rebuild_from: '{_last_load(url)}'}}"
        timings = [first] + [dbt_usage_hourly(url, since) for _ in range(repeat - 1)]
        with warehouse.connect(url) as conn:
            events, hours = conn.execute(
                "select (select count(*) from raw.events), (select count(*) from marts.usage_hourly)"
            ).fetchone()
        out[history] = {
            "events": events,
            "usage_rows": hours,
            "wall_s": statistics.median(t[0] for t in timings),
            "model_s": statistics.median(t[1] for t in timings),
            "model_runs": [t[1] for t in timings],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--history-events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--history-days", type=int, default=4, help="earlier days already loaded for the third loader row (0: none)"
    )
    parser.add_argument(
        "--days", type=int, default=0, help="only load days 1..N of --events events each, one onto the other"
    )
    parser.add_argument(
        "--repeat-days", type=lambda v: {int(d) for d in v.split(",")}, default={1, 8, 31},
        help="with --days: the days loaded --repeat times (default 1,8,31)",
    )  # fmt: skip
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="meterline-bench-events-"))
    if args.days:
        rows = bench_days(str(scratch / "landing-days"), args.days, args.events, args.repeat, args.repeat_days)
        print_days(rows, args)
        return
    os.environ.setdefault("DBT_TARGET_PATH", str(scratch / "dbt-target"))
    os.environ.setdefault("DBT_LOG_PATH", str(scratch / "dbt-logs"))
    results: dict = {"loader": {}}

    for label, formats in (("Parquet", ("parquet",)), ("Parquet + JSON Lines.gz", ("parquet", "jsonl.gz"))):
        landing = str(scratch / f"landing-{len(formats)}")
        url = fresh("meterline_bench_events", landing)
        t0 = time.perf_counter()
        generate(landing, DAY, 1, events_per_day=args.events, files_per_day=4, formats=formats, now=NOW)
        say(f"generated {args.events} events ({label}) in {time.perf_counter() - t0:.1f}s")
        results["loader"][label] = bench_loader(url, landing, args.repeat)
        say(f"loader {label}: {results['loader'][label]}")
        if len(formats) == 1 and args.history_days:
            held = add_history(url, args.history_days)
            label = f"Parquet, onto {args.history_days} earlier days ({held:,} events) in raw.events"
            results["loader"][label] = bench_loader(url, landing, args.repeat, history=True)
            say(f"loader {label}: {results['loader'][label]}")

    landing = str(scratch / "landing-history")
    url = fresh("meterline_bench_events_history", landing)
    t0 = time.perf_counter()
    days = 31
    generate(landing, date(2025, 3, 1), days, events_per_day=args.history_events, files_per_day=2, now=NOW)
    say(f"generated 31 days x {args.history_events} events in {time.perf_counter() - t0:.1f}s")
    results["incremental"] = bench_incremental(url, landing, args.repeat)
    say(f"incremental: {results['incremental']}")

    print(f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end), `python bench/bench_events.py --events {args.events} "
          f"--history-events {args.history_events} --history-days {args.history_days} --repeat {args.repeat}`, "
          f"medians of {args.repeat}.\n")  # fmt: skip
    print(
        "| day of events | rows read | loaded | loader s | loader events/s | raw COPY s | COPY rows/s | ratio "
        "| binary COPY s | ratio to binary |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, r in results["loader"].items():
        print(
            f"| {label} | {r['rows_read']:,} | {r['rows_loaded']:,} | {r['loader_s']:.1f} | {r['loader_eps']:,.0f} "
            f"| {r['floor_s']:.1f} | {r['floor_eps']:,.0f} | {r['ratio']:.2f}x | {r['binary_floor_s']:.1f} "
            f"| {r['binary_ratio']:.2f}x |"
        )
    print("\nLoader stages (median s): read = list, read, validate and probe the files for known keys, while")
    print("the writer thread COPYs each file into raw.events; write = what the writer still had to do after")
    print("the last file was read; record = quarantine, ledger, commit; probe = the key lookups (within read);")
    print("writer copy = the writer thread's own time ordering, encoding and COPYing (within read and write).\n")
    for label, r in results["loader"].items():
        print(f"- {label}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()))
    print(
        "\n| incremental usage_hourly after | raw.events rows | usage_hourly rows | model s | model runs "
        "| dbt run wall s |"
    )
    print("|---|---|---|---|---|---|")
    for history, r in results["incremental"].items():
        runs = ", ".join(f"{t:.2f}" for t in r["model_runs"])
        print(
            f"| day {history + 1} ({history} days of history) | {r['events']:,} | {r['usage_rows']:,} "
            f"| {r['model_s']:.2f} | {runs} | {r['wall_s']:.1f} |"
        )
    model = {history: r["model_s"] for history, r in results["incremental"].items()}
    print(f"\nmodel time day 31 / day 8: {model[30] / model[7]:.2f}; day 31 / day 2: {model[30] / model[1]:.2f}")


if __name__ == "__main__":
    main()
