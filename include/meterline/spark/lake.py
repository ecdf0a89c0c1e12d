"""The raw rows the heavy models read, as Parquet tables Spark sees (`raw.*` in Spark's catalog).

The loaders stay what they are: they validate, quarantine with file, line and reason, keep the
first delivery of each event and record their ledgers in PostgreSQL, in one transaction per
partition. This module copies what they committed into the lake, one partition at a time:
the partitions whose ledger fingerprint differs from the one written beside the partition's
Parquet file are exported again (PostgreSQL COPY -> Arrow -> Parquet), whole, into a new folder
that then takes the old one's place; the others are not read (an event day is found through a
BRIN on partition_date, not by scanning raw.events). So a sync after a nightly load
reads that day only, and a re-run changes nothing. A partition is held in memory while it is
written (a day of a million events: a few hundred MB).

Types keep their exact values: numeric travels as PostgreSQL's own text of the value (a CUR 2.0
rate AWS wrote as a double has 20 and more decimals, more than any one Spark decimal type holds
beside the integer digits of a cost); the models cast where they compute (`money()`,
`exact_numeric()`), and `money()` on Spark refuses a value its decimal(38,18) would round.
timestamptz becomes a UTC timestamp in microseconds, jsonb its text (Spark parses it as a variant
where a model needs a property), uuid its text.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from meterline import warehouse

log = logging.getLogger(__name__)

_FINGERPRINT_FILE = "_meterline_fingerprint"


@dataclass(frozen=True)
class LakeTable:
    """A raw table of PostgreSQL mirrored into the lake. `fingerprints` returns one row per
    partition value: (value, fingerprint text) from a ledger, cheap to compute; None means the
    table is small and copied whole on every sync."""

    name: str
    partition: str | None = None
    fingerprints: sql.Composable | None = None
    # Run before the partitions are exported (each export reads `where partition = value`).
    prepare: sql.Composable | None = None


TABLES = (
    LakeTable(
        "events",
        partition="partition_date",
        # The loader commits a partition's events and their files' ledger rows together, and
        # raw.events is append-only: a partition changed if and only if its ledger did.
        fingerprints=sql.SQL(
            "select partition_date, concat_ws('/', count(*), sum(rows_loaded), max(loaded_at))"
            " from raw.ingested_files where feed = 'events' group by partition_date"
        ),
        # A partition is found through a BRIN (migration 120). A BRIN reads every block range it
        # holds no summary for, whatever is asked, and the ranges loaded since the last summary
        # (dbt's usage models summarise in their pre-hook, after the sync) are all of them after
        # a month's load: summarise those once, so that each day's export reads its own blocks.
        prepare=sql.SQL("select brin_summarize_new_values('raw.events_partition_date_brin'::regclass)"),
    ),
    LakeTable("catalog_metrics"),
    # The loader swaps a billing period's line items and records the delivery in the same
    # transaction (one delivery's rows per period): a period's rows changed if and only if the
    # deliveries recorded for it did (a new one loaded, an old one superseded).
    LakeTable(
        "cur_line_items",
        partition="billing_period",
        fingerprints=sql.SQL(
            "select billing_period, md5(string_agg(concat_ws(':', delivery_id, status, loaded_at, superseded_by),"
            " ',' order by delivery_id)) from raw.cur_deliveries group by billing_period"
        ),
    ),
    LakeTable("cur_deliveries"),
)


_ARROW = {
    "integer": pa.int32(),
    "smallint": pa.int16(),
    "bigint": pa.int64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp with time zone": pa.timestamp("us"),
}
_SPARK = {
    "integer": "int",
    "smallint": "smallint",
    "bigint": "bigint",
    "boolean": "boolean",
    "date": "date",
    "timestamp with time zone": "timestamp",
}


def spark_type(pg_type: str) -> str:
    return _SPARK.get(pg_type, "string")


def _export_expression(name: str, pg_type: str) -> sql.Composable:
    column = sql.Identifier(name)
    if pg_type == "timestamp with time zone":
        return sql.SQL("to_char({} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')").format(column)
    if pg_type in ("double precision", "real"):
        raise ValueError(f"raw column {name} is {pg_type}: the lake holds no float")
    return sql.SQL("{}::text").format(column)


def export(conn, table: LakeTable, columns: list[tuple[str, str]], value: str | None) -> pa.Table:
    """The rows of `table` (of one partition value), typed for the lake, via one COPY."""
    select = sql.SQL("select {} from {}").format(
        sql.SQL(", ").join(_export_expression(n, t) for n, t in columns), sql.Identifier("raw", table.name)
    )
    if table.partition:
        select += sql.SQL(" where {} = {}").format(sql.Identifier(table.partition), sql.Literal(value))
    buffer = io.BytesIO()
    with conn.cursor().copy(sql.SQL("copy ({}) to stdout (format csv)").format(select)) as copy:
        for block in copy:
            buffer.write(block)
    names = [n for n, _ in columns]
    types = {n: _ARROW.get(t, pa.string()) for n, t in columns}
    buffer.seek(0)
    rows = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            # PostgreSQL writes NULL as an empty field and the empty string as "".
            quoted_strings_can_be_null=False,
            true_values=["true"],
            false_values=["false"],
        ),
    )
    for n, t in columns:
        if t == "timestamp with time zone":
            rows = rows.set_column(names.index(n), n, rows[n].cast(pa.timestamp("us", tz="UTC")))
    return rows


def _partition_dir(root: Path, table: LakeTable, value: str) -> Path:
    return root / table.name / f"{table.partition}={value}"


def _write(folder: Path, rows: pa.Table, fingerprint: str) -> None:
    """Write `rows` as the folder's only Parquet file, replacing the folder whole."""
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    pq.write_table(rows, staging / "part-00000.parquet", compression="zstd")
    (staging / _FINGERPRINT_FILE).write_text(fingerprint)
    retired = folder.parent / f".retired.{folder.name}.{uuid.uuid4().hex}"
    if folder.exists():
        folder.rename(retired)
    staging.rename(folder)
    shutil.rmtree(retired, ignore_errors=True)


def _stored_fingerprint(folder: Path) -> str | None:
    marker = folder / _FINGERPRINT_FILE
    return marker.read_text() if marker.exists() else None


def ddl(table: LakeTable, columns: list[tuple[str, str]], location: Path) -> list[str]:
    """Spark statements declaring the lake table over its folder (external: dropping it keeps the
    files), re-declared on every sync so a column added in PostgreSQL reaches Spark."""
    cols = ", ".join(f"`{n}` {spark_type(t)}" for n, t in columns)
    name = f"raw.`{table.name}`"
    statements = [
        "create database if not exists raw",
        f"drop table if exists {name}",
        f"create table {name} ({cols}) using parquet"
        + (f" partitioned by (`{table.partition}`)" if table.partition else "")
        + f" location '{location}'",
    ]
    if table.partition:
        statements.append(f"msck repair table {name} sync partitions")
    statements.append(f"refresh table {name}")
    return statements


def sync(conninfo: str, lake_dir: Path, spark) -> dict[str, int]:
    """Bring every lake table up to what PostgreSQL holds; returns the partitions (or whole
    tables) written per table. `spark` is a DB-API cursor on the Thrift server."""
    written: dict[str, int] = {}
    with warehouse.connect(conninfo) as conn:
        for table in TABLES:
            columns = warehouse.columns(conn, "raw", table.name)
            if not columns:
                raise RuntimeError(f"raw.{table.name} does not exist: bootstrap the warehouse first")
            root = lake_dir / table.name
            root.mkdir(parents=True, exist_ok=True)
            count = 0
            if table.prepare is not None:
                conn.execute(table.prepare)
                # Summarising holds a lock that a load's ANALYZE or autovacuum would wait for:
                # released now, not at the end of the sync.
                conn.commit()
            if table.partition:
                wanted = {str(v): f for v, f in conn.execute(table.fingerprints).fetchall()}
                for value, fingerprint in sorted(wanted.items()):
                    folder = _partition_dir(lake_dir, table, value)
                    if _stored_fingerprint(folder) == fingerprint:
                        continue
                    _write(folder, export(conn, table, columns, value), fingerprint)
                    count += 1
                for folder in root.glob(f"{table.partition}=*"):
                    if folder.name.split("=", 1)[1] not in wanted:
                        shutil.rmtree(folder)
                        count += 1
                location = root
            else:
                rows = export(conn, table, columns, None)
                location = root / "all"
                _write(location, rows, json.dumps({"rows": rows.num_rows}))
                count = 1
            for statement in ddl(table, columns, location):
                spark.execute(statement)
            written[table.name] = count
            log.info("lake: raw.%s, %d partition(s) written", table.name, count)
    return written
