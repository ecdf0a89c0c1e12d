"""Load CUR deliveries into `raw.cur_line_items`, one billing period at a time, atomically.

Each new delivery is COPYed into its own table, checked, and swapped in as the partition of its
billing period in the same transaction: readers see the previous delivery until the commit and the
new one after it, never a mix, and other periods are untouched. `raw.cur_deliveries` records every
delivery seen, with its status and the reason:
- `loaded` (live while `superseded_by` is null);
- `skipped`: another delivery of its report and period is current (`discover` decides from what
  AWS wrote), an earlier report's delivery superseded it, or it is not final while the live
  delivery of its month is (a final month is never replaced by a non-final delivery);
- `waiting`: AWS is still writing the report (status UPDATING), or a manifest-less partition whose
  file set has not yet been seen unchanged twice; a later run loads it;
- `failed`: a file is missing, unreadable or lacks a required column (the delivery is refused),
  or nothing AWS wrote tells which of a period's deliveries is current.
A delivery that AWS makes current again after another replaced it (the original files put back)
is loaded again. Drift is measured against the previous delivery of the same report and period
(columns and tag keys); for the first delivery of a period, against the report's latest earlier
period, and `drift_basis` says which.
"""

from __future__ import annotations

import io
import logging
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from meterline import audit, warehouse
from meterline.cur.discover import Delivery, discover
from meterline.cur.normalise import TAG_PREFIX, CurFormatError, column_name, normalise
from meterline.cur.read import batches, column_names
from meterline.landing import Zone

log = logging.getLogger(__name__)

PARENT = "cur_line_items"
# Columns the loader fills itself; every other column of raw.cur_line_items comes from the files.
META = ("delivery_id", "billing_period", "source_file", "line_seq", "source_line", "tags", "extras")
# Without these a delivery cannot be costed, dated, classified or reconciled: a file lacking one
# (renamed, dropped) refuses its delivery instead of loading cost 0 (legacy CSV names in brackets).
REQUIRED = {
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_usage_start_date": "lineItem/UsageStartDate",
    "line_item_usage_end_date": "lineItem/UsageEndDate",
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_currency_code": "lineItem/CurrencyCode",
}
_LOCK = "meterline.cur"


class CurLoadError(RuntimeError):
    """A delivery that could not be loaded; the previous delivery of its period stays live."""


class _NotReplaced(Exception):
    """Raised inside the load transaction to roll it back: the live delivery stays."""

    def __init__(self, reason: str, is_final: bool | None):
        super().__init__(reason)
        self.reason = reason
        self.is_final = is_final


@dataclass
class Outcome:
    key: str
    billing_period: date
    status: str  # loaded | skipped | waiting | failed
    reason: str = ""
    delivery_id: int | None = None
    rows: int = 0
    unblended_cost: Decimal = Decimal(0)
    billed_cost: Decimal = Decimal(0)
    columns_added: list[str] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)


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

    @property
    def waiting(self) -> list[str]:
        return [f"{o.key}: {o.reason}" for o in self.by_status("waiting")]


def typed_columns(conn: psycopg.Connection) -> dict[str, str]:
    """The file columns of raw.cur_line_items and their kind (text | numeric | timestamp)."""
    rows = warehouse.columns(conn, "raw", PARENT)
    kinds = {"numeric": "numeric", "timestamp with time zone": "timestamp"}
    return {name: kinds.get(kind, "text") for name, kind in rows if name not in META}


def _partition(delivery_id: int) -> sql.Identifier:
    return sql.Identifier("raw", f"{PARENT}_d{delivery_id}")


def _csv_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, batch_size=BATCH_WRITE))
    return out.getvalue()


BATCH_WRITE = 16_384
PREFETCH = 2  # rendered batches ready ahead of the COPY


def _render(zone: Zone, files: list[str], typed: dict[str, str]) -> Iterator[tuple]:
    """The delivery's files as COPY input, file after file: `("file", rel, columns, extras)`,
    then `("rows", n, csv bytes, tag keys)` per batch, then `("end",)`. A file without a REQUIRED
    column is refused before any of its rows is read."""
    line_seq = 1
    for rel in files:
        columns = [column_name(name) for name in column_names(zone, rel)]
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            named = ", ".join(f"{c} ({REQUIRED[c]})" for c in missing)
            raise CurFormatError(f"{zone.uri(rel)}: refused: no required column {named}")
        yield "file", rel, columns, [c for c in columns if c not in typed and not c.startswith(TAG_PREFIX)]
        # Tags and extras are rendered per distinct value: read their text as Parquet stores it.
        for first_line, batch in batches(zone, rel, lambda raw: column_name(raw) not in typed):
            normalised = normalise(batch, typed, file=zone.uri(rel), first_line=first_line)
            n = batch.num_rows
            table = normalised.table
            table = table.add_column(0, "source_line", pa.array(np.arange(first_line, first_line + n), pa.int64()))
            table = table.add_column(0, "line_seq", pa.array(np.arange(line_seq, line_seq + n), pa.int64()))
            yield "rows", n, _csv_bytes(table), normalised.tag_keys
            line_seq += n
        yield ("end",)


@contextmanager
def _ahead(items: Iterator[tuple], depth: int = PREFETCH) -> Iterator[Iterator[tuple]]:
    """Run `items` in a thread, up to `depth` items ahead of the reader: the next batch is read,
    normalised and rendered (Arrow releases the GIL) while PostgreSQL parses the last one, also
    across files. An exception in the thread is raised to the reader where it occurred."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except Exception as exc:  # handed to the reader, raised there
            put((False, exc))

    def read() -> Iterator[tuple]:
        while True:
            more, value = ready.get()
            if more:
                yield value
            elif value is None:
                return
            else:
                raise value

    worker = threading.Thread(target=produce, name="meterline-cur-render", daemon=True)
    worker.start()
    try:
        yield read()
    finally:
        stop.set()
        worker.join()


def _copy_file(
    conn: psycopg.Connection, zone: Zone, target: sql.Identifier, typed: dict[str, str], items: Iterator[tuple]
) -> tuple[int, list[str], list[str], set[str]]:
    """COPY the next file of `items` (see `_render`) into `target`; returns (rows, normalised
    columns, extra columns, tag keys found in its rows)."""
    _, rel, columns, extras = next(items)
    conn.execute(
        sql.SQL("alter table {} alter column source_file set default {}").format(target, sql.Literal(zone.uri(rel)))
    )
    names = ["line_seq", "source_line", *typed, "tags", "extras"]
    statement = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, names))
    )
    rows = 0
    tag_keys: set[str] = set()
    cursor = conn.cursor()
    # A writer thread sends each rendered chunk while the next is rendered: Python's work overlaps
    # PostgreSQL's parsing instead of adding to it.
    try:
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for item in items:
                if item[0] == "end":
                    break
                _, n, data, keys = item
                copy.write(data)
                rows += n
                tag_keys |= keys
    except psycopg.errors.DataError as exc:
        # PostgreSQL names the COPY line (one COPY per file: line n is the file's n-th row).
        context = (exc.diag.context or "").strip().splitlines()
        where = re.search(r"line (\d+)", context[0]) if context else None
        csv_header = 1 if rel.endswith((".csv", ".csv.gz")) else 0
        row = f"{'line' if csv_header else 'row'} {int(where.group(1)) + csv_header}" if where else "a row"
        raise CurFormatError(f"{zone.uri(rel)}: {row}: {exc.diag.message_primary or exc}") from exc
    return rows, columns, extras, tag_keys


def record(conninfo: str, delivery: Delivery, status: str, reason: str, *, is_final: bool | None = None) -> None:
    """Record a delivery that was not loaded (skipped, waiting or failed) with the reason. A row
    already loaded keeps its status (the reason is in the log and the audit trail)."""
    # The checksum vouches for is_final: kept only when the data was read.
    checksum = delivery.checksum_if_known() if is_final is not None else None
    with warehouse.transaction(conninfo) as conn:
        conn.execute(
            "insert into raw.cur_deliveries (delivery_key, format, report_name, assembly_id, billing_period,"
            " manifest_path, files, checksum, delivered_at, delivery_group, status, error, is_final)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, false))"
            " on conflict (delivery_key) do update set status = excluded.status, error = excluded.error,"
            " checksum = coalesce(excluded.checksum, raw.cur_deliveries.checksum),"
            " is_final = coalesce(%s, raw.cur_deliveries.is_final)"
            " where raw.cur_deliveries.status not in ('loaded', 'loading')",
            [
                delivery.key,
                delivery.format,
                delivery.report_name,
                delivery.assembly_id,
                delivery.billing_period,
                delivery.manifest_path,
                Jsonb([{"path": rel, "sha256": delivery.checksums.get(rel)} for rel in delivery.files]),
                checksum,
                delivery.delivered_at,
                delivery.group,
                status,
                reason,
                is_final,
                is_final,
            ],
        )
        if status == "waiting":
            # A partition whose files changed since it was first seen: the older observation
            # will never settle.
            conn.execute(
                "update raw.cur_deliveries set status = 'skipped',"
                " error = 'its files changed before they settled: replaced by ' || %s"
                " where delivery_group = %s and status = 'waiting' and delivery_key <> %s",
                [delivery.key, delivery.group, delivery.key],
            )
        if status == "failed":
            audit.record(
                conn,
                actor="meterline.cur",
                action="cur.delivery_failed",
                resource=f"cur:{delivery.billing_period:%Y-%m}",
                metadata={"delivery_key": delivery.key, "error": reason},
            )


def load_delivery(conninfo: str, zone: Zone, delivery: Delivery) -> Outcome:
    """Load one delivery in one transaction (see the module docstring). Raises `CurLoadError`
    naming the file and the reason when a file cannot be loaded; the warehouse is then unchanged
    except for the failure recorded in the ledger. A delivery that must not replace the live one
    is rolled back and recorded as skipped."""
    period = delivery.billing_period
    try:
        missing = [rel for rel in delivery.files if not zone.exists(rel)]
        if missing:
            raise CurFormatError(
                f"the manifest {zone.uri(delivery.manifest_path or '')} names {len(missing)} missing file(s):"
                f" {', '.join(zone.uri(rel) for rel in missing)}"
            )
        with warehouse.transaction(conninfo) as conn:
            return _load(conn, zone, delivery)
    except _NotReplaced as decision:
        record(conninfo, delivery, "skipped", decision.reason, is_final=decision.is_final)
        return Outcome(delivery.key, period, "skipped", decision.reason)
    except (
        CurFormatError,
        OSError,
        psycopg.errors.DataError,
        psycopg.errors.IntegrityError,
        pa.ArrowException,
    ) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.Error) and exc.diag.context:
            message += f" ({exc.diag.context.strip().splitlines()[0]})"
        record(conninfo, delivery, "failed", message)
        raise CurLoadError(f"CUR delivery {delivery.key} for {period:%Y-%m} failed: {message}") from exc


def _previous(conn: psycopg.Connection, delivery: Delivery, delivery_id: int) -> tuple[dict | None, str]:
    """The delivery drift is measured against, and a sentence saying which (or why none)."""
    query = (
        "select delivery_id, billing_period, columns, tag_keys from raw.cur_deliveries"
        " where report_name = %s and format = %s and status = 'loaded' and delivery_id <> %s and {}"
        " order by billing_period desc, superseded_by is null desc, superseded_at desc nulls last,"
        " delivery_id desc limit 1"
    )
    args = [delivery.report_name, delivery.format, delivery_id, delivery.billing_period]
    cursor = conn.cursor(row_factory=dict_row)
    same = cursor.execute(sql.SQL(query).format(sql.SQL("billing_period = %s")), args).fetchone()
    if same:
        return same, f"previous delivery {same['delivery_id']} of {delivery.billing_period:%Y-%m}"
    earlier = cursor.execute(sql.SQL(query).format(sql.SQL("billing_period < %s")), args).fetchone()
    if earlier:
        return earlier, (
            f"first delivery of {delivery.billing_period:%Y-%m}: against delivery {earlier['delivery_id']}"
            f" of {earlier['billing_period']:%Y-%m}, the report's latest earlier period"
        )
    return None, f"first delivery of report {delivery.report_name} ({delivery.format}): no drift measured"


def _load(conn: psycopg.Connection, zone: Zone, delivery: Delivery) -> Outcome:
    period = delivery.billing_period
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [_LOCK])
    cursor = conn.cursor(row_factory=dict_row)
    mine = cursor.execute(
        "select delivery_id, status, superseded_by, checksum, is_final from raw.cur_deliveries where delivery_key = %s",
        [delivery.key],
    ).fetchone()
    if mine and mine["status"] == "loaded" and mine["superseded_by"] is None:
        return Outcome(delivery.key, period, "skipped", f"already live (delivery {mine['delivery_id']})")
    checksum = delivery.checksum(zone)
    live = cursor.execute(
        "select delivery_id, checksum, delivered_at, delivery_group, is_final, bill_invoice_id"
        " from raw.cur_deliveries"
        " where billing_period = %s and status = 'loaded' and superseded_by is null",
        [period],
    ).fetchone()
    if live and live["checksum"] == checksum:
        return Outcome(delivery.key, period, "skipped", f"same files as live delivery {live['delivery_id']}")
    other_report = live is not None and live["delivery_group"] != delivery.group
    if mine and mine["status"] == "loaded" and other_report:
        return Outcome(
            delivery.key,
            period,
            "skipped",
            f"superseded by delivery {live['delivery_id']} of another report ({live['delivery_group']})",
        )
    if other_report and live["delivered_at"] and delivery.delivered_at and delivery.delivered_at < live["delivered_at"]:
        raise _NotReplaced(
            f"older than live delivery {live['delivery_id']} ({live['delivered_at']:%Y-%m-%dT%H:%M:%SZ})", None
        )
    known_final = mine["is_final"] if mine and mine["checksum"] == checksum else None
    if live and live["is_final"] and known_final is False:
        raise _NotReplaced(_not_final(live), None)

    files = [{"path": rel, "sha256": delivery.checksums[rel]} for rel in delivery.files]
    delivery_id = conn.execute(
        "insert into raw.cur_deliveries (delivery_key, format, report_name, assembly_id, billing_period,"
        " manifest_path, files, checksum, delivered_at, delivery_group, status)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'loading')"
        " on conflict (delivery_key) do update set status = 'loading', error = null, files = excluded.files,"
        " checksum = excluded.checksum, delivery_group = excluded.delivery_group returning delivery_id",
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
            delivery.group,
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
    data_tags: set[str] = set()
    with _ahead(_render(zone, delivery.files, typed)) as items:
        for _ in delivery.files:
            n, cols, extras, keys = _copy_file(conn, zone, target, typed, items)
            rows += n
            columns += [c for c in cols if c not in columns]
            extra_columns += [c for c in extras if c not in extra_columns]
            data_tags |= keys

    unblended, billed, invoice_id, currencies = conn.execute(
        sql.SQL(
            "select coalesce(sum(line_item_unblended_cost), 0),"
            " coalesce(sum(coalesce(line_item_net_unblended_cost, line_item_unblended_cost)), 0),"
            " max(nullif(bill_invoice_id, '')),"
            " coalesce(array_agg(distinct line_item_currency_code order by line_item_currency_code)"
            "  filter (where nullif(line_item_currency_code, '') is not null), '{{}}')"
            " from {t}"
        ).format(t=target)
    ).fetchone()
    if live and live["is_final"] and invoice_id is None:
        raise _NotReplaced(_not_final(live), False)

    # Tag keys: those of tag columns in the header (legacy) and those found in the lines (maps),
    # as the normaliser wrote them into `tags`.
    prefix = TAG_PREFIX + "_"
    tag_keys = sorted(set(data_tags) | {c[len(prefix) :] for c in columns if c.startswith(prefix)})
    previous, drift_basis = _previous(conn, delivery, delivery_id)
    before_columns = (previous or {}).get("columns")
    before_tags = (previous or {}).get("tag_keys")
    added = [c for c in columns if before_columns is not None and c not in before_columns]
    removed = [c for c in before_columns or [] if c not in columns]
    tags_added = [k for k in tag_keys if before_tags is not None and k not in before_tags]
    tags_removed = [k for k in before_tags or [] if k not in tag_keys]

    # The swap: a CHECK matching the partition bound lets ATTACH skip its validation scan.
    conn.execute(
        sql.SQL("alter table {} add constraint {} check (billing_period is not null and billing_period = {})").format(
            target, sql.Identifier(f"cur_line_items_d{delivery_id}_period"), sql.Literal(period)
        )
    )
    if live:
        old = _partition(live["delivery_id"])
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
        " columns_added = %s, columns_removed = %s, tag_keys = %s, tag_keys_added = %s, tag_keys_removed = %s,"
        " drift_basis = %s, drift_against = %s, currencies = %s, loaded_at = now(),"
        " superseded_by = null, superseded_at = null where delivery_id = %s",
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
            tag_keys,
            tags_added,
            tags_removed,
            drift_basis,
            (previous or {}).get("delivery_id"),
            currencies,
            delivery_id,
        ],
    )
    if live:
        conn.execute(
            "update raw.cur_deliveries set superseded_by = %s, superseded_at = now() where delivery_id = %s",
            [delivery_id, live["delivery_id"]],
        )
    # What waited in this group (a half-written refresh) will never load now.
    conn.execute(
        "update raw.cur_deliveries set status = 'skipped',"
        " error = 'its files changed before it could load: replaced by delivery ' || %s"
        " where delivery_group = %s and status = 'waiting' and delivery_id <> %s",
        [delivery_id, delivery.group, delivery_id],
    )
    reloaded = bool(mine and mine["status"] == "loaded")
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
            "currencies": currencies,
            "superseded": live["delivery_id"] if live else None,
            "reloaded": reloaded,
            "drift_basis": drift_basis,
            "columns_added": added,
            "columns_removed": removed,
            "tag_keys_removed": tags_removed,
        },
    )
    notes = ["final" if invoice_id else "not final"]
    if reloaded:
        notes.append(f"current again: replaces delivery {live['delivery_id']}" if live else "current again")
    return Outcome(
        delivery.key,
        period,
        "loaded",
        "; ".join(notes),
        delivery_id,
        rows,
        Decimal(unblended),
        Decimal(billed),
        added,
        list(currencies),
    )


def _not_final(live: dict) -> str:
    return (
        f"not final (no bill_invoice_id) while live delivery {live['delivery_id']} is final"
        f" (invoice {live['bill_invoice_id']}): a final month is never replaced by a non-final delivery"
    )


def run(conninfo: str | None = None, landing_url: str | None = None) -> RunSummary:
    """Load every new delivery under `LANDING_URL/cur/`, in order. Each delivery not loaded is
    logged with the reason; a failed one is recorded and reported, and the others still load."""
    from meterline.landing import landing

    conninfo = conninfo or warehouse.url()
    zone = landing(landing_url)
    deliveries, manifest_errors = discover(zone)
    for error in manifest_errors:
        log.error("manifest refused: %s", error)
    with warehouse.connect(conninfo) as conn:
        ledger = {
            row[0]: (row[1], row[2])
            for row in conn.execute("select delivery_key, status, superseded_by from raw.cur_deliveries")
        }
    outcomes: list[Outcome] = []
    for delivery in deliveries:
        outcome = _decide(conninfo, zone, delivery, ledger.get(delivery.key))
        outcomes.append(outcome)
        level = logging.ERROR if outcome.status == "failed" else logging.INFO
        log.log(
            level,
            "delivery %s (%s): %s%s%s",
            delivery.key,
            f"{delivery.billing_period:%Y-%m}",
            outcome.status,
            f": {outcome.reason}" if outcome.reason else "",
            f" rows={outcome.rows} unblended_cost={outcome.unblended_cost}" if outcome.status == "loaded" else "",
        )
    return RunSummary(len(deliveries), outcomes, manifest_errors)


def _decide(conninfo: str, zone: Zone, delivery: Delivery, seen: tuple[str, int | None] | None) -> Outcome:
    """Load the delivery, or say why not (and record it)."""
    period = delivery.billing_period
    if delivery.ambiguous:
        record(conninfo, delivery, "failed", delivery.reason)
        return Outcome(delivery.key, period, "failed", delivery.reason)
    if not delivery.current:
        if seen is None or seen[0] in ("skipped", "waiting"):
            record(conninfo, delivery, "skipped", delivery.reason)
        return Outcome(delivery.key, period, "skipped", delivery.reason)
    if seen and seen[0] == "loaded" and seen[1] is None:
        return Outcome(delivery.key, period, "skipped", "already live")
    if delivery.waiting:
        reason = f"waiting: {delivery.waiting}; a later run loads it"
        record(conninfo, delivery, "waiting", reason)
        return Outcome(delivery.key, period, "waiting", reason)
    if delivery.settle and (seen is None or seen[0] == "skipped"):
        reason = (
            "waiting: a partition without manifest or status file, first seen with these files;"
            " it loads when the next run finds them unchanged"
        )
        record(conninfo, delivery, "waiting", reason)
        return Outcome(delivery.key, period, "waiting", reason)
    try:
        return load_delivery(conninfo, zone, delivery)
    except CurLoadError as exc:
        return Outcome(delivery.key, period, "failed", str(exc))


def flat_csv_delivery(zone: Zone, rel: str, billing_period: date, report_name: str = "flat") -> Delivery:
    """An ETL tool's flattened CUR 2.0 export (one CSV, snake_case columns) as a delivery of
    `billing_period`; it has no manifest, so its key is the file and its checksum."""
    delivery = Delivery(key="", format="flat_csv", report_name=report_name, billing_period=billing_period, files=[rel])
    delivery.key = f"flat:{rel}:{delivery.checksum(zone)}"
    return delivery


def summarise(summary: RunSummary) -> dict:
    """Log and return what a run did: deliveries found, loaded, skipped, waiting and failed, and
    the rows, cost and currencies of each period loaded (an XCom-sized dict, no secrets)."""
    periods: dict[str, dict] = {}
    for outcome in summary.by_status("loaded"):
        periods[f"{outcome.billing_period:%Y-%m}"] = {
            "delivery_id": outcome.delivery_id,
            "rows": outcome.rows,
            "unblended_cost": str(outcome.unblended_cost),
            "billed_cost": str(outcome.billed_cost),
            "currencies": outcome.currencies,
            "final": outcome.reason.startswith("final"),
            "columns_added": outcome.columns_added,
        }
    report = {
        "found": summary.found,
        "loaded": len(summary.by_status("loaded")),
        "skipped": len(summary.by_status("skipped")),
        "waiting": summary.waiting,
        "failed": summary.failed,
        "periods": periods,
    }
    log.info(
        "CUR deliveries: %d found, %d loaded, %d skipped, %d waiting, %d failed",
        report["found"],
        report["loaded"],
        report["skipped"],
        len(report["waiting"]),
        len(report["failed"]),
    )
    for period, figures in sorted(periods.items()):
        log.info(
            "period %s: %d rows, unblended %s, billed %s%s%s",
            period,
            figures["rows"],
            figures["unblended_cost"],
            figures["billed_cost"],
            f" ({', '.join(figures['currencies'])})" if len(figures["currencies"]) > 1 else "",
            " (final)" if figures["final"] else "",
        )
    for waiting in report["waiting"]:
        log.info("waiting: %s", waiting)
    for failure in report["failed"]:
        log.error("failed: %s", failure)
    return report
