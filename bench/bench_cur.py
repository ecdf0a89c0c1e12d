"""Benchmark: load a CUR 2.0 Parquet delivery of 1M line items, next to a raw COPY of the same rows.

    .venv/bin/python bench/bench_cur.py [--rows 1000000] [--repeat 3] [--write-results]

In one process, on one generated month (CUR 2.0 Parquet, 2 files):
- loader: `meterline.cur.load.load_delivery` end to end (read Parquet, normalise tags and extras,
  COPY into the delivery's table, totals, swap the partition in, ledger), timed per repeat;
- baseline: `COPY` of the very rows the loader writes (pre-rendered CSV, not timed) into an
  unindexed table of the same columns: what PostgreSQL alone costs;
- dbt: `dbt build` (models and their tests) from fact_cost_raw to recon_summary, full refresh.
Medians are reported; the ratio loader rows/s / COPY rows/s is the figure to compare (target >= 0.5).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from _timing import machine, write_section
from psycopg import sql

from meterline import transform, warehouse
from meterline.cur.discover import discover
from meterline.cur.load import _csv_bytes, load_delivery, typed_columns
from meterline.cur.normalise import normalise
from meterline.cur.read import batches
from meterline.landing import Zone
from meterline.synthetic import cur as gen

PERIOD = date(2025, 3, 1)
DATABASE = "meterline_bench_cur"


def _reset(conninfo: str) -> None:
    with warehouse.transaction(conninfo) as conn:
        for (name,) in conn.execute(
            "select tablename from pg_tables where schemaname = 'raw' and tablename like 'cur_line_items_d%'"
        ):
            conn.execute(sql.SQL("drop table {}").format(sql.Identifier("raw", name)))
        conn.execute("delete from raw.cur_deliveries")


def _prerender(conninfo: str, zone: Zone, files: list[str]) -> tuple[list[str], bytes, int]:
    with warehouse.connect(conninfo) as conn:
        typed = typed_columns(conn)
    import numpy as np
    import pyarrow as pa

    out = io.BytesIO()
    rows = 0
    for rel in files:
        for first, batch in batches(zone, rel):
            table = normalise(batch, typed, file=rel, first_line=first).table
            n = batch.num_rows
            table = table.add_column(0, "source_line", pa.array(np.arange(first, first + n), pa.int64()))
            table = table.add_column(0, "line_seq", pa.array(np.arange(rows + 1, rows + n + 1), pa.int64()))
            out.write(_csv_bytes(table))
            rows += n
    return ["line_seq", "source_line", *typed, "tags", "extras"], out.getvalue(), rows


def _raw_copy(conninfo: str, columns: list[str], payload: bytes) -> float:
    with warehouse.transaction(conninfo) as conn:
        conn.execute("drop table if exists raw.bench_copy")
        conn.execute("create table raw.bench_copy (like raw.cur_line_items including defaults)")
        conn.execute(
            "alter table raw.bench_copy alter column delivery_id set default 0,"
            " alter column billing_period set default '2025-03-01', alter column source_file set default 'bench'"
        )
    started = time.perf_counter()
    with warehouse.transaction(conninfo) as conn:
        statement = sql.SQL("copy raw.bench_copy ({}) from stdin (format csv)").format(
            sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with conn.cursor().copy(statement) as copy:
            view = memoryview(payload)
            for offset in range(0, len(payload), 8 << 20):
                copy.write(view[offset : offset + (8 << 20)])
    elapsed = time.perf_counter() - started
    with warehouse.transaction(conninfo) as conn:
        conn.execute("drop table raw.bench_copy")
    return elapsed


def _seed_catalog(conninfo: str) -> None:
    with warehouse.transaction(conninfo) as conn:
        conn.execute(
            "insert into raw.catalog_plans values ('std', 'Standard', 'USD', 0, 0, 'bench') on conflict do nothing"
        )
        for n in range(1, 13):
            tenant = f"t-{n:04d}"
            conn.execute(
                "insert into raw.catalog_tenants values (%s, %s, 'US', 'USD', null, 'bench') on conflict do nothing",
                [tenant, tenant],
            )
            conn.execute(
                "insert into raw.catalog_subscriptions"
                " values (gen_random_uuid(), %s, 'std', '2025-01-01', null, 'bench')",
                [tenant],
            )
        conn.execute(
            "insert into raw.catalog_allocation_rules values"
            " (1, 'AmazonEC2', 'even', null, '2025-01-01', null, 'bench'),"
            " (1, 'AmazonS3', 'even', null, '2025-01-01', null, 'bench') on conflict do nothing"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--write-results", action="store_true", help="replace this benchmark's section of bench/RESULTS.md"
    )
    args = parser.parse_args(argv)

    server = warehouse.url()
    warehouse.drop_database(server, DATABASE)
    conninfo = warehouse.with_database(server, DATABASE)
    warehouse.bootstrap(conninfo)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cur-") as scratch:
            zone = Zone(scratch)
            started = time.perf_counter()
            month = gen.month(PERIOD, args.rows)
            gen.write_cur2(zone, gen.restatement(month, 1, 1, final=True), PERIOD, datetime(2025, 4, 2, tzinfo=UTC))
            generate_s = time.perf_counter() - started
            delivery = discover(zone)[0][0]
            size = sum(Path(scratch, f).stat().st_size for f in delivery.files)

            loads = []
            for _ in range(args.repeat):
                _reset(conninfo)
                started = time.perf_counter()
                outcome = load_delivery(conninfo, zone, delivery)
                loads.append(time.perf_counter() - started)
                assert outcome.rows == args.rows and outcome.unblended_cost == month.decimal("unblended"), outcome
            columns, payload, rows = _prerender(conninfo, zone, delivery.files)
            assert rows == args.rows
            copies = [_raw_copy(conninfo, columns, payload) for _ in range(args.repeat)]

        _seed_catalog(conninfo)
        transform.run(
            ["run", "--select", "+recon_summary", "--exclude", "fact_cost_raw+"], conninfo, capture_output=True
        )
        builds = []
        for _ in range(max(1, args.repeat - 1)):
            started = time.perf_counter()
            transform.run(
                ["build", "--full-refresh", "--select", "fact_cost_raw+,+recon_summary"], conninfo, capture_output=True
            )
            builds.append(time.perf_counter() - started)
    finally:
        warehouse.drop_database(server, DATABASE)

    load_s, copy_s, build_s = statistics.median(loads), statistics.median(copies), statistics.median(builds)
    load_rate, copy_rate = args.rows / load_s, args.rows / copy_s

    def runs(values: list[float], digits: int = 2) -> str:
        return ", ".join(f"{x:.{digits}f}" for x in values)

    lines = [
        f"CUR 2.0 Parquet, {args.rows:,} line items, {len(delivery.files)} files, {size / 1e6:.1f} MB"
        f" (generated in {generate_s:.1f} s)",
        f"loader (read + normalise + COPY + swap): median {load_s:.2f} s = {load_rate:,.0f} rows/s"
        f"  (runs: {runs(loads)})",
        f"raw COPY of the same rows (CSV pre-rendered): median {copy_s:.2f} s = {copy_rate:,.0f} rows/s"
        f"  (runs: {runs(copies)})",
        f"ratio loader / raw COPY: {load_rate / copy_rate:.2f}x (target >= 0.5x)",
        f"dbt build fact_cost_raw -> recon_summary (full refresh, models + tests): median {build_s:.1f} s"
        f"  (runs: {runs(builds, 1)})",
    ]
    print("\n".join(lines))
    if args.write_results:
        _write_results(lines, args)
    return 0


def _write_results(lines: list[str], args: argparse.Namespace) -> None:
    write_section(
        "bench_cur",
        [
            "## CUR loader (bench/bench_cur.py)",
            "",
            f"{machine()}; shared 2-core machine (compare ratios).",
            f"Command: `.venv/bin/python bench/bench_cur.py --rows {args.rows} --repeat {args.repeat} --write-results`",
            "",
            "```",
            *lines,
            "```",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
