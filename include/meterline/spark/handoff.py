"""The hand-off: the heavy models Spark built, copied into PostgreSQL's `marts`, where the billing
models read them as if dbt-postgres had built them.

Each heavy model is partitioned by UTC day on Spark (`usage_date`, insert_overwrite replaces a
partition's files whole). A partition is copied again when its files differ from those last
copied (names and sizes; `ops.spark_handoff` keeps them), so a nightly hand-off copies the days
Spark rewrote. For each model, in one transaction: the changed days' rows go through a binary-free
COPY (Arrow -> CSV text, which PostgreSQL parses into the columns' own types) into a temporary
table, the target's rows of those days are deleted and the new ones inserted, and the
fingerprints recorded. A crash leaves the model as it was; a re-run copies nothing.

The PostgreSQL table is created by dbt-postgres itself from the same model file (`dbt run
--empty`), so its column types and indexes are exactly the PostgreSQL engine's. Numbers arrive as
decimal(38,18) and are stored with trailing zeros trimmed (`trim_scale`), as PostgreSQL's own
aggregates would have written them; a float column in Spark's output fails the hand-off.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from meterline import warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeavyModel:
    """A model built on Spark and handed to marts, one Spark partition at a time. With a
    `time_column`, the partition is that timestamptz column's UTC day (a Spark-only column);
    without, the partition column is a column of the PostgreSQL table too (its value is in the
    folder's name, not in the Parquet files)."""

    name: str
    time_column: str | None = "hour"
    partition: str = "usage_date"


HEAVY_MODELS = (
    HeavyModel("usage_hourly"),
    HeavyModel("usage_metered_hourly"),
    HeavyModel("fact_cost_raw", time_column=None, partition="billing_period"),
)


def table_location(spark, model: HeavyModel) -> Path:
    spark.execute(f"describe formatted marts.`{model.name}`")
    for name, value, *_ in spark.fetchall():
        if (name or "").strip() == "Location":
            return Path(value.strip().removeprefix("file:"))
    raise RuntimeError(f"Spark does not say where marts.{model.name} is stored")


def partitions(location: Path, model: HeavyModel) -> dict[str, tuple[list[Path], str]]:
    """Per partition value: its Parquet files and their fingerprint (names and sizes)."""
    found = {}
    for folder in sorted(location.glob(f"{model.partition}=*")):
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
        found[folder.name.split("=", 1)[1]] = (files, ";".join(f"{p.name}:{p.stat().st_size}" for p in files))
    return found


def _read(files: list[Path]) -> pa.Table | None:
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def copy_model(conn, model: HeavyModel, location: Path) -> dict[str, int]:
    """Copy the changed partitions of one model inside the caller's transaction; returns
    {'days': partitions copied or removed, 'rows': rows inserted}."""
    columns = warehouse.columns(conn, "marts", model.name)
    if not columns:
        raise RuntimeError(f"marts.{model.name} does not exist in PostgreSQL")
    handed = dict(
        conn.execute(
            "select partition_value, fingerprint from ops.spark_handoff where model = %s", [model.name]
        ).fetchall()
    )
    present = partitions(location, model)
    changed = {value: files for value, (files, fp) in present.items() if handed.get(value) != fp}
    removed = [value for value in handed if value not in present]
    if not changed and not removed:
        return {"days": 0, "rows": 0}

    target = sql.Identifier("marts", model.name)
    scratch = sql.Identifier(f"spark_handoff_{model.name}")
    names = [n for n, _ in columns]
    conn.execute(sql.SQL("create temp table {} (like {}) on commit drop").format(scratch, target))
    copied: dict[str, int] = dict.fromkeys(changed, 0)  # rows per partition value
    for value, files in changed.items():
        table = _read(files)
        if table is None:
            continue
        if model.time_column is None and model.partition not in table.column_names:
            table = table.append_column(model.partition, pa.array([value] * table.num_rows, pa.string()))
        floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
        if floats:
            raise TypeError(f"Spark's {model.name} has float columns {floats}: money and quantities must be exact")
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise RuntimeError(f"Spark's {model.name} lacks columns {missing} that marts.{model.name} has")
        text = io.BytesIO()
        pacsv.write_csv(table.select(names), text, pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
        with conn.cursor().copy(
            sql.SQL("copy {} ({}) from stdin (format csv)").format(
                scratch, sql.SQL(", ").join(map(sql.Identifier, names))
            )
        ) as copy:
            copy.write(text.getvalue())
        copied[value] = table.num_rows
    days = [*changed, *removed]
    # Partition by partition; a day as a range of the time column, so PostgreSQL reads the
    # target through its index.
    for day in days:
        if model.time_column is None:
            conn.execute(sql.SQL("delete from {} where {} = %s").format(target, sql.Identifier(model.partition)), [day])
            continue
        conn.execute(
            sql.SQL("delete from {} where {} >= %s::date::timestamptz and {} < (%s::date + 1)::timestamptz").format(
                target, sql.Identifier(model.time_column), sql.Identifier(model.time_column)
            ),
            [day, day],
        )
    conn.execute(
        sql.SQL("insert into {} ({}) select {} from {}").format(
            target,
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(
                sql.SQL("trim_scale({})").format(sql.Identifier(n)) if t == "numeric" else sql.Identifier(n)
                for n, t in columns
            ),
            scratch,
        )
    )
    conn.execute("delete from ops.spark_handoff where model = %s and partition_value = any(%s)", [model.name, days])
    for value, count in copied.items():
        conn.execute(
            "insert into ops.spark_handoff (model, partition_value, fingerprint, row_count) values (%s, %s, %s, %s)",
            [model.name, value, present[value][1], count],
        )
    rows = sum(copied.values())
    log.info("hand-off: marts.%s, %d day(s) replaced, %d row(s) copied", model.name, len(days), rows)
    return {"days": len(days), "rows": rows}


def run(conninfo: str, spark, models=HEAVY_MODELS) -> dict[str, dict[str, int]]:
    """Hand every heavy model over, each in its own transaction."""
    done = {}
    for model in models:
        location = table_location(spark, model)
        with warehouse.transaction(conninfo) as conn:
            done[model.name] = copy_model(conn, model, location)
    return done
