"""Load CUR deliveries into `raw.cur_line_items`, one billing period at a time, atomically.

Each new delivery is COPYed into its own table, checked, and swapped in as the partition of its
billing period in the same transaction: readers see the previous delivery until the commit and the
new one after it, never a mix, and other periods are untouched. `raw.cur_deliveries` records every
delivery (superseded and failed ones too). A delivery already loaded, or whose files are the same
as the live delivery's, is a no-op.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.types.json import Jsonb

from meterline import audit, warehouse
from meterline.cur.discover import Delivery, discover
from meterline.cur.normalise import CurFormatError, normalise
from meterline.cur.read import batches
from meterline.landing import Zone

log = logging.getLogger(__name__)

PARENT = "cur_line_items"
# Columns the loader fills itself; every other column of raw.cur_line_items comes from the files.
META = ("delivery_id", "billing_period", "source_file", "line_seq", "source_line", "tags", "extras")
_LOCK = "meterline.cur"


class CurLoadError(RuntimeError):
    """A delivery that could not be loaded; the previous delivery of its period stays live."""


@dataclass
class Outcome:
    key: str
    billing_period: date
    status: str  # loaded | skipped | failed
    reason: str = ""
    delivery_id: int | None = None
    rows: int = 0
    unblended_cost: Decimal = Decimal(0)
    billed_cost: Decimal = Decimal(0)
    columns_added: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    found: int
    outcomes: list[Outcome]
    manifest_errors: list[str]

    def by_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[str]:
        return self.manifest_errors + [f"{o.key}: {o.reason}" for o in self.by_status("failed")]


def typed_columns(conn: psycopg.Connection) -> dict[str, str]:
    """The file columns of raw.cur_line_items and their kind (text | numeric | timestamp)."""
    rows = conn.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = 'raw' and table_name = %s order by ordinal_position",
        [PARENT],
    ).fetchall()
    kinds = {"numeric": "numeric", "timestamp with time zone": "timestamp"}
    return {name: kinds.get(kind, "text") for name, kind in rows if name not in META}


def _partition(delivery_id: int) -> sql.Identifier:
    return sql.Identifier("raw", f"{PARENT}_d{delivery_id}")


def _csv_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, batch_size=BATCH_WRITE))
    return out.getvalue()


BATCH_WRITE = 16_384


def _copy_file(
    conn: psycopg.Connection,
    zone: Zone,
    rel: str,
    target: sql.Identifier,
    typed: dict[str, str],
    line_seq: int,
) -> tuple[int, list[str], list[str]]:
    """COPY one file into `target`; returns (rows, normalised columns, extra columns)."""
    conn.execute(
        sql.SQL("alter table {} alter column source_file set default {}").format(target, sql.Literal(zone.uri(rel)))
    )
    names = ["line_seq", "source_line", *typed, "tags", "extras"]
    statement = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, names))
    )
    rows = 0
    columns: list[str] = []
    extras: list[str] = []
    cursor = conn.cursor()
    # A writer thread sends each rendered chunk while the next batch is read and normalised, so
    # Python's work overlaps PostgreSQL's parsing instead of adding to it.
    try:
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for first_line, batch in batches(zone, rel):
                normalised = normalise(batch, typed, file=zone.uri(rel), first_line=first_line)
                if not columns:
                    columns, extras = normalised.columns, normalised.extra_columns
                n = batch.num_rows
                table = normalised.table
                table = table.add_column(0, "source_line", pa.array(np.arange(first_line, first_line + n), pa.int64()))
                table = table.add_column(
                    0, "line_seq", pa.array(np.arange(line_seq + rows, line_seq + rows + n), pa.int64())
                )
                copy.write(_csv_bytes(table))
                rows += n
    except psycopg.errors.DataError as exc:
        # PostgreSQL names the COPY line (one COPY per file: line n is the file's n-th row).
        context = (exc.diag.context or "").strip().splitlines()
        where = re.search(r"line (\d+)", context[0]) if context else None
        csv_header = 1 if rel.endswith((".csv", ".csv.gz")) else 0
        row = f"{'line' if csv_header else 'row'} {int(where.group(1)) + csv_header}" if where else "a row"
        raise CurFormatError(f"{zone.uri(rel)}: {row}: {exc.diag.message_primary or exc}") from exc
    return rows, columns, extras


def _record_failure(conninfo: str, delivery: Delivery, error: str) -> None:
    with warehouse.transaction(conninfo) as conn:
        conn.execute(
            "insert into raw.cur_deliveries (delivery_key, format, report_name, assembly_id, billing_period,"
            " manifest_path, files, delivered_at, status, error)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, 'failed', %s)"
            " on conflict (delivery_key) do update set status = 'failed', error = excluded.error"
            " where raw.cur_deliveries.status <> 'loaded'",
            [
                delivery.key,
                delivery.format,
                delivery.report_name,
                delivery.assembly_id,
                delivery.billing_period,
                delivery.manifest_path,
                Jsonb(delivery.files),
                delivery.delivered_at,
                error,
            ],
        )
        audit.record(
            conn,
            actor="meterline.cur",
            action="cur.delivery_failed",
            resource=f"cur:{delivery.billing_period:%Y-%m}",
            metadata={"delivery_key": delivery.key, "error": error},
        )


def load_delivery(conninfo: str, zone: Zone, delivery: Delivery) -> Outcome:
    """Load one delivery in one transaction (see the module docstring). Raises `CurLoadError`
    naming the file and the reason when a file cannot be loaded; the warehouse is then unchanged
    except for the failure recorded in the ledger."""
    period = delivery.billing_period
    try:
        with warehouse.transaction(conninfo) as conn:
            return _load(conn, zone, delivery)
    except (CurFormatError, psycopg.errors.DataError, psycopg.errors.IntegrityError, pa.ArrowException) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.Error) and exc.diag.context:
            message += f" ({exc.diag.context.strip().splitlines()[0]})"
        _record_failure(conninfo, delivery, message)
        raise CurLoadError(f"CUR delivery {delivery.key} for {period:%Y-%m} failed: {message}") from exc


def _load(conn: psycopg.Connection, zone: Zone, delivery: Delivery) -> Outcome:
    period = delivery.billing_period
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [_LOCK])
    status = conn.execute("select status from raw.cur_deliveries where delivery_key = %s", [delivery.key]).fetchone()
    if status and status[0] == "loaded":
        return Outcome(delivery.key, period, "skipped", "already loaded")
    checksum = delivery.checksum(zone)
    live = conn.execute(
        "select delivery_id, checksum, delivered_at, report_name from raw.cur_deliveries"
        " where billing_period = %s and status = 'loaded' and superseded_by is null",
        [period],
    ).fetchone()
    if live and live[1] == checksum:
        return Outcome(delivery.key, period, "skipped", f"same files as live delivery {live[0]}")
    if live and live[2] and delivery.delivered_at and delivery.delivered_at < live[2]:
        return Outcome(delivery.key, period, "skipped", f"older than live delivery {live[0]}")

    files = [{"path": rel, "sha256": delivery.checksums[rel]} for rel in delivery.files]
    delivery_id = conn.execute(
        "insert into raw.cur_deliveries (delivery_key, format, report_name, assembly_id, billing_period,"
        " manifest_path, files, checksum, delivered_at, status)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'loading')"
        " on conflict (delivery_key) do update set status = 'loading', error = null, files = excluded.files,"
        " checksum = excluded.checksum returning delivery_id",
        [
            delivery.key,
            delivery.format,
            delivery.report_name,
            delivery.assembly_id,
            period,
            delivery.manifest_path,
            Jsonb(files),
            checksum,
            delivery.delivered_at,
        ],
    ).fetchone()[0]

    typed = typed_columns(conn)
    target = _partition(delivery_id)
    conn.execute(sql.SQL("drop table if exists {}").format(target))
    conn.execute(sql.SQL("create table {} (like raw.{} including defaults)").format(target, sql.Identifier(PARENT)))
    conn.execute(
        sql.SQL(
            "alter table {} alter column delivery_id set default {}, alter column billing_period set default {}"
        ).format(target, sql.Literal(delivery_id), sql.Literal(period))
    )
    rows = 0
    columns: list[str] = []
    extra_columns: list[str] = []
    for rel in delivery.files:
        n, cols, extras = _copy_file(conn, zone, rel, target, typed, rows + 1)
        rows += n
        columns += [c for c in cols if c not in columns]
        extra_columns += [c for c in extras if c not in extra_columns]

    unblended, billed, invoice_id = conn.execute(
        sql.SQL(
            "select coalesce(sum(line_item_unblended_cost), 0),"
            " coalesce(sum(coalesce(line_item_net_unblended_cost, line_item_unblended_cost)), 0),"
            " max(nullif(bill_invoice_id, '')) from {}"
        ).format(target)
    ).fetchone()

    previous = conn.execute(
        "select columns from raw.cur_deliveries where report_name = %s and format = %s and status = 'loaded'"
        " order by billing_period desc, delivery_id desc limit 1",
        [delivery.report_name, delivery.format],
    ).fetchone()
    added = [c for c in columns if previous and previous[0] is not None and c not in previous[0]]
    removed = [c for c in (previous[0] or [])] if previous else []
    removed = [c for c in removed if c not in columns]

    # The swap: a CHECK matching the partition bound lets ATTACH skip its validation scan.
    conn.execute(
        sql.SQL("alter table {} add constraint {} check (billing_period is not null and billing_period = {})").format(
            target, sql.Identifier(f"cur_line_items_d{delivery_id}_period"), sql.Literal(period)
        )
    )
    if live:
        old = _partition(live[0])
        conn.execute(sql.SQL("alter table raw.{} detach partition {}").format(sql.Identifier(PARENT), old))
        conn.execute(sql.SQL("drop table {}").format(old))
    conn.execute(
        sql.SQL("alter table raw.{} attach partition {} for values in ({})").format(
            sql.Identifier(PARENT), target, sql.Literal(period)
        )
    )
    conn.execute(
        "update raw.cur_deliveries set status = 'loaded', error = null, row_count = %s, unblended_cost = %s,"
        " billed_cost = %s, bill_invoice_id = %s, is_final = %s, columns = %s, extra_columns = %s,"
        " columns_added = %s, columns_removed = %s, loaded_at = now() where delivery_id = %s",
        [
            rows,
            unblended,
            billed,
            invoice_id,
            invoice_id is not None,
            columns,
            extra_columns,
            added,
            removed,
            delivery_id,
        ],
    )
    if live:
        conn.execute(
            "update raw.cur_deliveries set superseded_by = %s, superseded_at = now() where delivery_id = %s",
            [delivery_id, live[0]],
        )
    audit.record(
        conn,
        actor="meterline.cur",
        action="cur.delivery_loaded",
        resource=f"cur:{period:%Y-%m}",
        metadata={
            "delivery_id": delivery_id,
            "delivery_key": delivery.key,
            "rows": rows,
            "unblended_cost": str(unblended),
            "superseded": live[0] if live else None,
            "columns_added": added,
            "columns_removed": removed,
        },
    )
    return Outcome(
        delivery.key,
        period,
        "loaded",
        "final" if invoice_id else "",
        delivery_id,
        rows,
        Decimal(unblended),
        Decimal(billed),
        added,
    )


def run(conninfo: str | None = None, landing_url: str | None = None) -> RunSummary:
    """Load every new delivery under `LANDING_URL/cur/`, in order. A failed delivery is recorded
    and reported; the others still load."""
    from meterline.landing import landing

    conninfo = conninfo or warehouse.url()
    zone = landing(landing_url)
    deliveries, manifest_errors = discover(zone)
    for error in manifest_errors:
        log.error("manifest refused: %s", error)
    with warehouse.connect(conninfo) as conn:
        loaded = {row[0] for row in conn.execute("select delivery_key from raw.cur_deliveries where status = 'loaded'")}
    outcomes: list[Outcome] = []
    for delivery in deliveries:
        if delivery.key in loaded:
            outcomes.append(Outcome(delivery.key, delivery.billing_period, "skipped", "already loaded"))
            continue
        try:
            outcome = load_delivery(conninfo, zone, delivery)
        except CurLoadError as exc:
            log.error("%s", exc)
            outcome = Outcome(delivery.key, delivery.billing_period, "failed", str(exc))
        outcomes.append(outcome)
        log.info(
            "delivery %s (%s): %s %s rows=%d unblended_cost=%s",
            delivery.key,
            f"{delivery.billing_period:%Y-%m}",
            outcome.status,
            outcome.reason,
            outcome.rows,
            outcome.unblended_cost,
        )
    return RunSummary(len(deliveries), outcomes, manifest_errors)


def flat_csv_delivery(zone: Zone, rel: str, billing_period: date, report_name: str = "flat") -> Delivery:
    """An ETL tool's flattened CUR 2.0 export (one CSV, snake_case columns) as a delivery of
    `billing_period`; it has no manifest, so its key is the file and its checksum."""
    delivery = Delivery(key="", format="flat_csv", report_name=report_name, billing_period=billing_period, files=[rel])
    delivery.key = f"flat:{rel}:{delivery.checksum(zone)}"
    return delivery


def summarise(summary: RunSummary) -> dict:
    """Log and return what a run did: deliveries found, loaded, skipped and failed, and the rows
    and cost of each period loaded (an XCom-sized dict, no secrets)."""
    periods: dict[str, dict] = {}
    for outcome in summary.by_status("loaded"):
        periods[f"{outcome.billing_period:%Y-%m}"] = {
            "delivery_id": outcome.delivery_id,
            "rows": outcome.rows,
            "unblended_cost": str(outcome.unblended_cost),
            "billed_cost": str(outcome.billed_cost),
            "final": outcome.reason == "final",
            "columns_added": outcome.columns_added,
        }
    report = {
        "found": summary.found,
        "loaded": len(summary.by_status("loaded")),
        "skipped": len(summary.by_status("skipped")),
        "failed": summary.failed,
        "periods": periods,
    }
    log.info(
        "CUR deliveries: %d found, %d loaded, %d skipped, %d failed",
        report["found"],
        report["loaded"],
        report["skipped"],
        len(report["failed"]),
    )
    for period, figures in sorted(periods.items()):
        log.info(
            "period %s: %d rows, unblended %s, billed %s%s",
            period,
            figures["rows"],
            figures["unblended_cost"],
            figures["billed_cost"],
            " (final)" if figures["final"] else "",
        )
    for failure in report["failed"]:
        log.error("failed: %s", failure)
    return report
