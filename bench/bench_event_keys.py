"""Compare ways of keeping raw.events' idempotency key unique as history grows (issue 18), in SQL.

For each option, a table shaped like raw.events (a random 23-character key, a timestamp, a day,
a 120-byte payload) receives `--rows` new rows a day for `--days` days. Each day, after a
checkpoint (a nightly load follows one): the floor (the same rows inserted into an unindexed
table), then the key lookup a loader makes (how many of the day's keys are already there) and
the insert into the keyed table, in the order that option's index takes best. Printed per day:
floor, lookup and insert seconds, the ratio floor / (lookup + insert), and the index size.

Options:
- text_c: main's unique B-tree on the key text, collation "C" (migration 021).
- hash_excl: an exclusion constraint on a hash index of the key (a 32-bit hash; PostgreSQL
  compares the texts on a hash match).
- bigint_btree: a B-tree on a 64-bit hash of the key (a generated column), texts compared by the
  lookup (migration 115 makes it unique and salts the hash of a colliding key).
- part_local: raw.events partitioned by day, a unique B-tree on the key in each partition; the
  global guard is the lookup in every partition.

Run: `.venv/bin/python bench/bench_event_keys.py --rows 300000 --days 31 --options text_c,bigint_btree`.
It uses its own databases (`bench_event_keys_<option>`) on the warehouse server, as superuser
(for CHECKPOINT).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date, timedelta

import psycopg
from psycopg import sql

from meterline import warehouse

TABLE = "create table {} (key text not null, h bigint, ts timestamptz not null, pdate date not null, payload text)"
HASHED = (
    "create table t (key text not null, h bigint generated always as (hashtextextended(key, 0)) stored,"
    " ts timestamptz not null, pdate date not null, payload text)"
)
SETUP = {
    "text_c": [TABLE.format("t"), 'create unique index on t (key collate "C")'],
    "hash_excl": [TABLE.format("t"), "alter table t add exclude using hash (key with =)"],
    "bigint_btree": [HASHED, "create index on t (h)"],
    "part_local": [
        TABLE.format("t") + " partition by range (pdate)",
        'create unique index on t (key collate "C", pdate)',
    ],
}
BY_TEXT = 'select count(*) from t where key collate "C" = any(array(select key from s order by key collate "C"))'
LOOKUP = {
    "text_c": BY_TEXT,
    "hash_excl": "select count(*) from t where key = any(array(select key from s))",
    "bigint_btree": "select count(*) from t"
    " where h = any(array(select hashtextextended(key, 0) as h from s order by h))"
    " and key = any(array(select key from s))",
    "part_local": BY_TEXT,
}
ORDER = {"bigint_btree": "hashtextextended(key, 0)"}


def run(option: str, rows: int, days: int) -> None:
    server = warehouse.url()
    name = f"bench_event_keys_{option}"
    warehouse.drop_database(server, name)
    warehouse.create_database(server, name)
    with psycopg.connect(warehouse.with_database(server, name), autocommit=True) as conn:
        for statement in SETUP[option]:
            conn.execute(statement)
        conn.execute(TABLE.format("f"))
        insert = sql.SQL("insert into t (key, ts, pdate, payload) select key, ts, pdate, payload from s order by {}")
        insert = insert.format(sql.SQL(ORDER.get(option, 'key collate "C"')))
        for day in range(1, days + 1):
            if option == "part_local":
                start = date(2025, 1, 1) + timedelta(days=day - 1)
                conn.execute(
                    sql.SQL("create table {} partition of t for values from ({}) to ({})").format(
                        sql.Identifier(f"t_{day}"), sql.Literal(start), sql.Literal(start + timedelta(days=1))
                    )
                )
            conn.execute("drop table if exists s")
            conn.execute(
                "create table s as select 'ik-' || substr(md5(random()::text || i), 1, 20) as key,"
                " timestamptz '2025-01-01' + (%(d)s - 1) * interval '1 day' + i * interval '80 ms' as ts,"
                " date '2025-01-01' + (%(d)s - 1) as pdate, repeat('x', 120) as payload"
                " from generate_series(1, %(n)s) i",
                {"d": day, "n": rows},
            )
            conn.execute("truncate f")
            conn.execute("checkpoint")
            t0 = time.perf_counter()
            conn.execute("insert into f (key, ts, pdate, payload) select key, ts, pdate, payload from s")
            floor = time.perf_counter() - t0
            conn.execute("checkpoint")
            t0 = time.perf_counter()
            conn.execute(LOOKUP[option])
            lookup = time.perf_counter() - t0
            t0 = time.perf_counter()
            conn.execute(insert)
            insert_s = time.perf_counter() - t0
            index = conn.execute(
                "select coalesce(sum(pg_relation_size(i.indexrelid)), 0) from pg_index i"
                " join pg_class r on r.oid = i.indrelid where r.relname = 't' or r.relname like 't\\_%%'"
            ).fetchone()[0]
            print(
                f"{option} day {day:2d} floor {floor:.2f} lookup {lookup:.2f} insert {insert_s:.2f} "
                f"ratio {floor / (lookup + insert_s):.2f} index {index / 2**20:.0f}MB load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    warehouse.drop_database(server, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--options", default=",".join(SETUP))
    args = parser.parse_args()
    for option in args.options.split(","):
        run(option, args.rows, args.days)


if __name__ == "__main__":
    main()
