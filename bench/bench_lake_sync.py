"""The lake sync's export of raw.events, a day at a time, with and without the BRIN on
partition_date (migration 120), paired in the same minutes (issue 17).

A month of `per_day` synthetic rows a day (31 days, in partition order, as the loader appends
them) is inserted into a scratch database; then, alternately, every day is exported as
`meterline.spark.lake.sync` does (`lake.export`, after the table's `prepare`): once with the BRIN
dropped (each day a scan of the whole table) and once with it created and summarised. Medians of
three of each and the ratio.

Run: `.venv/bin/python bench/bench_lake_sync.py 150000` (4.65M rows: about 4 minutes on 2 cores).
"""

from __future__ import annotations

import statistics
import sys
import time

from meterline import warehouse
from meterline.spark import lake

DAYS = [f"2025-03-{d:02d}" for d in range(1, 32)]
EVENTS = next(t for t in lake.TABLES if t.name == "events")
# The index as the warehouse creates it: migration 120's own statement.
CREATE_BRIN = dict(warehouse._migrations())["120_events_partition_brin.sql"]


def export_month(url: str, with_brin: bool) -> float:
    with warehouse.connect(url) as conn:
        conn.execute("drop index if exists raw.events_partition_date_brin")
        if with_brin:
            conn.execute(CREATE_BRIN)
        conn.commit()
        columns = warehouse.columns(conn, "raw", "events")
        started = time.perf_counter()
        if with_brin:
            conn.execute(EVENTS.prepare)
            conn.commit()
        for day in DAYS:
            lake.export(conn, EVENTS, columns, day)
        return time.perf_counter() - started


def main(per_day: int) -> None:
    server = warehouse.url()
    url = warehouse.with_database(server, "bench_lake_sync")
    warehouse.drop_database(server, "bench_lake_sync")
    warehouse.bootstrap(url)
    with warehouse.connect(url) as conn:
        conn.execute(
            "insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties,"
            ' "timestamp", source_file, line_no, partition_date)'
            " select gen_random_uuid(), 'k' || d || '-' || i, gen_random_uuid(), 'api_call',"
            """ '{"tokens": 5, "model": "m"}', timestamptz '2025-03-01' + make_interval(days => d, secs => i),"""
            " 'events/f' || d || '.parquet', i, date '2025-03-01' + d"
            " from generate_series(0, 30) d, generate_series(1, %s) i",
            [per_day],
        )
        conn.commit()
        conn.execute("analyze raw.events")
        conn.commit()
        size = conn.execute("select pg_size_pretty(pg_relation_size('raw.events'))").fetchone()[0]
    print(f"raw.events: {31 * per_day:,} rows, {size}")
    runs: dict[str, list[float]] = {"scan": [], "brin": []}
    for _ in range(3):
        for mode in runs:
            runs[mode].append(export_month(url, with_brin=mode == "brin"))
            print(f"{mode}: {runs[mode][-1]:.2f} s", flush=True)
    scan, brin = statistics.median(runs["scan"]), statistics.median(runs["brin"])
    print(f"medians: scan {scan:.2f} s, brin {brin:.2f} s; brin / scan {brin / scan:.3f}")
    warehouse.drop_database(server, "bench_lake_sync")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150_000)
