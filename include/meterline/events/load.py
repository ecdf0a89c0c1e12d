"""Loading one day partition of usage-event dumps into `raw.events`, exactly once.

For the files under `events/year=YYYY/month=MM/day=DD/` of the landing zone (local or `s3://`):
skip a file whose path and sha256 are in `raw.ingested_files`; validate the rest with Arrow
(`meterline.events.validate`); keep the first row of each `idempotency_key` among the
partition's good rows (file, then line order), drop the keys `raw.events` already holds (one
lookup each of the unique index on a 64-bit hash of the key, the texts compared on a match), and COPY the rest straight
into `raw.events` (PostgreSQL's binary format, encoded column-wise by `meterline.events.pgcopy`)
— file by file, in a writer thread, while the next file is read and validated. So the first
delivery of an event wins, and a re-delivery — in the same file, another file or another day —
is counted as a duplicate; the database itself refuses a second row with a known key, whatever
writes it (migration 115).
Invalid rows go to `raw.events_rejected` with file, line and reason; each file's counts go to
`raw.ingested_files`. Every row of a file is counted once: rows read = loaded + duplicates +
rejected, each counted on its own (the COPY's rows, the keys dropped as known, the reasons), and
the load stops, changing nothing, if a file's numbers do not add up. What a file holds never
fails the partition (`meterline.events.validate`: empty files, bombs, huge or deep lines are
rows with a reason); a file that cannot be opened at all (not gzip, not Parquet, not readable)
is named, not recorded, and the others load.

Everything happens in one transaction: a crash (or a killed process) leaves the tables exactly
as they were. Loaders of one day queue on an advisory lock, and all loaders queue on another
before their first key lookup, held until they commit, so no two race on a key (the unique
key_hash would refuse it anyway). The lookups run on a second, read-only session, from the main
thread, while the writer thread COPYs the previous file.
Paths are recorded relative to the landing zone, so the same files
under another `LANDING_URL` (a local folder or its copy in S3) are the same files.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as day_time
from itertools import pairwise

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from meterline import warehouse
from meterline.config import settings
from meterline.events import SUFFIXES, partition_prefix, pgcopy
from meterline.events.validate import (
    Batch,
    Limits,
    file_format,
    raw_records,
    read_jsonl,
    read_parquet,
    validate,
)
from meterline.landing import Zone

log = logging.getLogger(__name__)
APPLICATION_NAME = "meterline.events.load"
# How many rejected rows per file the log names one by one (all are in raw.events_rejected).
_LOGGED_REJECTIONS = 5


@dataclass
class FileResult:
    path: str
    checksum: str
    file_format: str
    size_bytes: int
    skipped: bool = False
    error: str | None = None  # the file could not be read at all (corrupt Parquet, truncated gzip)
    io_error: bool = False  # ... because the landing zone did not give its bytes (a retry may)
    rows_read: int = 0
    rows_loaded: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_loaded + self.duplicates + sum(self.rejected.values())


@dataclass
class PartitionResult:
    day: date
    files: list[FileResult]
    # Stages: read (probe and write alongside), write, record; and, within them, the time spent
    # looking up known keys (probe) and the writer thread's time COPYing (writer copy).
    seconds: dict[str, float] = field(default_factory=dict)

    def _sum(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files if not f.skipped)

    @property
    def unreadable(self) -> list[str]:
        return [f"{f.path}: {f.error}" for f in self.files if f.error]

    @property
    def retryable(self) -> bool:
        """Some file was not read because the landing zone failed, not because of what it holds."""
        return any(f.io_error for f in self.files)

    @property
    def files_read(self) -> int:
        return sum(1 for f in self.files if not f.skipped and not f.error)

    @property
    def files_skipped(self) -> int:
        return sum(1 for f in self.files if f.skipped)

    @property
    def rows_read(self) -> int:
        return self._sum("rows_read")

    @property
    def rows_loaded(self) -> int:
        return self._sum("rows_loaded")

    @property
    def duplicates(self) -> int:
        return self._sum("duplicates")

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        total: Counter = Counter()
        for f in self.files:
            total.update(f.rejected)
        return dict(sorted(total.items()))

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def as_dict(self) -> dict:
        return {
            "day": self.day.isoformat(),
            "files_read": self.files_read,
            "files_skipped": self.files_skipped,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "unreadable": self.unreadable,
        }

    def counts(self) -> dict[str, int]:
        """Flat numbers, as a task's return value (ops.pipeline_runs keeps them)."""
        flat = {k: v for k, v in self.as_dict().items() if isinstance(v, int)}
        flat["files_unreadable"] = len(self.unreadable)
        flat |= {f"rejected:{reason}": n for reason, n in self.rejected_by_reason.items()}
        return flat

    def summary(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in self.rejected_by_reason.items()) or "none"
        unreadable = ""
        if self.unreadable:
            unreadable = f"; UNREADABLE files (not loaded, not recorded): {'; '.join(self.unreadable)}"
        return (
            f"events {self.day}: files read {self.files_read} (skipped, already ingested: {self.files_skipped}), "
            f"rows read {self.rows_read}, loaded {self.rows_loaded}, duplicates {self.duplicates}, "
            f"rejected {self.rejected} ({reasons}); read = loaded + duplicates + rejected for each of the"
            f" {self.files_read} files read{unreadable}"
        )


def _parse(path: str, data: bytes, limits: Limits) -> Batch:
    if file_format(path) == "parquet":
        return read_parquet(path, pa.BufferReader(data), limits)
    return read_jsonl(path, data, limits)


# What a file that cannot be opened at all raises: not gzip (or truncated), not Parquet.
_UNREADABLE = (pa.ArrowException, OSError, EOFError, zlib.error)


def _jsonb_fits(conn: psycopg.Connection):
    """Whether PostgreSQL stores a text as jsonb: asked only for texts near jsonb's size limit
    (validate.too_large), in a savepoint so a refusal leaves the load's transaction as it was."""

    def fits(text: str) -> bool:
        try:
            with conn.transaction():
                conn.execute("select %s::jsonb is not null", [text])
        except (psycopg.errors.ProgramLimitExceeded, psycopg.errors.StatementTooComplex, psycopg.errors.DataError):
            return False
        return True

    return fits


def _copy(conn: psycopg.Connection, table: str, columns: dict[str, str], rows: pa.Table) -> None:
    """COPY an Arrow table in PostgreSQL's binary format, encoded column-wise (`pgcopy`): no
    Python loop per row, and PostgreSQL takes uuids, timestamps and integers as they are stored
    instead of parsing text. `columns`: name -> PostgreSQL type, in the table's column order."""
    if rows.num_rows == 0:
        return
    statement = sql.SQL("copy {} ({}) from stdin (format binary)").format(
        sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(statement) as copy:
        copy.write(pgcopy.HEADER)
        # Large chunks: the writer thread takes the GIL back after each Arrow call, and while
        # the main thread parses JSON that wait is up to a switch interval (5 ms) each time.
        for chunk in pgcopy.rows(rows.select(list(columns)), list(columns.values()), rows_per_chunk=1 << 20):
            copy.write(chunk)
        copy.write(pgcopy.TRAILER)


def _no_nul(values: pa.Array) -> pa.Array:
    # PostgreSQL text cannot hold NUL; quarantined records keep it visible as an escape.
    return pc.replace_substring(values, "\x00", "\\u0000")


def _first_seen(rows: pa.Table) -> pa.Table:
    """Within one file's good rows (in line order), keep the first of each key: the COPY then
    never carries a key twice."""
    keyed = pa.table({"key": rows["idempotency_key"], "i": pa.array(range(rows.num_rows), pa.int64())})
    firsts = keyed.group_by("key", use_threads=False).aggregate([("i", "min")])["i_min"]
    if len(firsts) == rows.num_rows:
        return rows
    return rows.take(pc.take(firsts, pc.sort_indices(firsts)))


def accepted_rows(batch: Batch, ts: pa.Array, ok: pa.Array) -> pa.Table:
    """The rows validation accepted, as raw.events takes them (less partition_date, loaded_at)."""
    cols = batch.columns
    return pa.table(
        {
            "event_id": cols["event_id"],
            "idempotency_key": cols["idempotency_key"],
            "subscription_id": cols["subscription_id"],
            "event_type": cols["event_type"],
            "properties": cols["properties"],
            "timestamp": ts,
            "signature": cols["signature"],
            "source_file": pa.repeat(pa.scalar(batch.path), batch.num_rows),
            "line_no": batch.line_no,
        }
    ).filter(ok)


EVENT_COLUMNS = {
    "event_id": "uuid",
    "idempotency_key": "text",
    "subscription_id": "uuid",
    "event_type": "text",
    "properties": "jsonb",
    "timestamp": "timestamptz",
    "signature": "text",
    "source_file": "text",
    "line_no": "int4",
    "partition_date": "date",
    "loaded_at": "timestamptz",
}
# What the writer COPYs: the event, and the salt of its key's hash (0 unless the hash collides
# with another key's; PostgreSQL computes key_hash from both, migration 115).
WRITTEN_COLUMNS = EVENT_COLUMNS | {"key_salt": "int4"}


def _split(keys: pa.Array) -> str:
    # One newline-joined text (validation refuses control characters in a key), which
    # PostgreSQL splits: no per-key work in Python.
    return pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(keys)], pa.int32()), keys), "\n")[0].as_py()


def _known_keys(conn: psycopg.Connection, rows: pa.Table, taken: list[pa.Array]) -> tuple[pa.Table, int]:
    """`rows` (distinct keys, none sent to the writer yet) less the keys raw.events already
    holds, with the columns the writer needs: `key_salt` (COPYed) and `key_hash` (what
    PostgreSQL computes from the key and the salt: the unique key of raw.events, migration 115;
    the writer orders by it). Returns them and the number of known keys dropped. `taken`: the
    hashes of the rows this load sent to the writer before (not visible to this session yet).

    A key is known when a row with the same text is found at its hash: the hashes of all keys
    with salt 0 are computed by PostgreSQL and looked up at once (one probe each of the unique
    index). A hash that another text holds (in raw.events, earlier in this load or earlier in
    this file) is a collision: that key (rare) is looked up again with salt 1, 2, ... until its
    own text (known) or a free hash (new) turns up."""
    keys = rows["idempotency_key"].combine_chunks()
    n = len(keys)
    if n == 0:
        empty = rows.append_column("key_salt", pa.array([], pa.int32()))
        return empty.append_column("key_hash", pa.array([], pa.int64())), 0
    # One statement: PostgreSQL splits the keys, hashes them, returns the hashes (binary: a
    # quarter of a million integers) and the rows already at them. Sending the hashes back as a
    # parameter instead cost seconds per 250k keys in psycopg's list adaptation.
    with conn.cursor(binary=True) as cur:
        hashes, found_hashes, found_keys = cur.execute(
            "with k as materialized (select n, raw.event_key_hash(k, 0) as h"
            "  from unnest(string_to_array(%s, E'\\n')) with ordinality as u(k, n))"
            " select (select array_agg(h order by n) from k), found.hashes, found.keys"
            " from (select array_agg(key_hash) as hashes, array_agg(idempotency_key) as keys from raw.events"
            "  where key_hash = any(array(select h from k order by h))) found",
            [_split(keys)],
        ).fetchone()
    hashes = pa.array(hashes, pa.int64())
    found = list(zip(found_hashes or [], found_keys or [], strict=True))
    known = pc.is_in(keys, pa.array([text for _, text in found], pa.string()))
    held = pa.concat_arrays([pa.array([h for h, _ in found], pa.int64()), *taken])
    clash = pc.and_not(pc.is_in(hashes, held), known)
    index = pa.array(np.arange(n, dtype=np.int64))
    firsts = pa.table({"h": hashes, "i": index}).group_by("h", use_threads=False).aggregate([("i", "min")])
    if len(firsts) < n:
        clash = pc.or_(clash, pc.and_not(pc.invert(pc.is_in(index, firsts["i_min"])), known))
    drop = known.to_numpy(zero_copy_only=False).copy()
    hash_of = hashes.to_numpy().copy()
    salts = np.zeros(n, np.int32)
    clashing = pc.indices_nonzero(clash).to_numpy()
    if len(clashing):
        keeps = ~drop
        keeps[clashing] = False
        in_use = set(held.to_pylist()) | set(hash_of[keeps].tolist())
        for i in clashing.tolist():
            key = keys[i].as_py()
            for salt in itertools.count(1):
                h, text = conn.execute(
                    "select raw.event_key_hash(%(k)s, %(s)s),"
                    " (select idempotency_key from raw.events where key_hash = raw.event_key_hash(%(k)s, %(s)s))",
                    {"k": key, "s": salt},
                ).fetchone()
                if text == key:  # stored under a salted hash by an earlier load
                    drop[i] = True
                    break
                if text is None and h not in in_use:
                    log.info("idempotency key %r: its hash is another key's; stored with salt %d", key, salt)
                    salts[i], hash_of[i] = salt, h
                    in_use.add(h)
                    break
    rows = rows.append_column("key_salt", pa.array(salts)).append_column("key_hash", pa.array(hash_of))
    return rows.filter(pa.array(~drop)), int(drop.sum())


REJECT_COLUMNS = {
    "source_file": "text",
    "checksum": "text",
    "line_no": "int4",
    "reason": "text",
    "raw_record": "text",
    "idempotency_key": "text",
    "timestamp": "timestamptz",
    "partition_date": "date",
}


class _Writer(threading.Thread):
    """COPYs each file's new events into raw.events while the caller reads, validates and
    probes the next file, so Python's parsing and the probe overlap PostgreSQL's COPY. Owns the
    connection until `finish()`; the first error stops the writing and is raised by `finish()`."""

    def __init__(self, conn: psycopg.Connection, day: date):
        super().__init__(name="events-writer", daemon=True)
        self.conn, self.day = conn, day
        self.queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
        self.loaded: Counter = Counter()
        self.seconds: Counter = Counter()  # time spent COPYing
        self.loaded_at: datetime | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        while (rows := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self._write(rows)
                except BaseException as exc:  # handed to the caller by finish()
                    self.error = exc

    def _write(self, rows: pa.Table) -> None:
        if self.loaded_at is None:
            # Stamped when writing starts, not when the transaction began: dbt's watermark (the
            # newest loaded_at it has seen, less a look-back) then misses no load still running.
            self.loaded_at = self.conn.execute("select clock_timestamp()").fetchone()[0]
        started = time.perf_counter()
        n = rows.num_rows
        if n == 0:
            return
        # Rows go in by day of their timestamp, then key_hash. The unique B-tree on key_hash
        # (migration 115) then takes the file's on-time events in one pass in index order
        # (neighbouring inserts on the same or the next leaf page). Late events come in their own
        # day's run, so the BRIN block ranges of "timestamp" stay within a day and a late hour
        # does not widen the ranges of the day that brought it.
        day = pc.divide(rows["timestamp"].cast(pa.int64()), 86_400_000_000)
        order = pa.table({"day": day, "key_hash": rows["key_hash"]})
        rows = rows.take(pc.sort_indices(order, sort_keys=[("day", "ascending"), ("key_hash", "ascending")]))
        _copy(
            self.conn,
            "raw.events",
            WRITTEN_COLUMNS,
            rows.append_column("partition_date", pa.repeat(pa.scalar(self.day, pa.date32()), n)).append_column(
                "loaded_at", pa.repeat(pa.scalar(self.loaded_at, pa.timestamp("us", tz="UTC")), n)
            ),
        )
        self.seconds["copy"] += time.perf_counter() - started
        per_file = rows.group_by("source_file").aggregate([("line_no", "count")])
        files, counts = per_file["source_file"].to_pylist(), per_file["line_no_count"].to_pylist()
        self.loaded.update(dict(zip(files, counts, strict=True)))

    def finish(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def load_partition(
    day: date,
    *,
    landing_url: str | None = None,
    conninfo: str | None = None,
    signing_key: str | None = None,
    now: datetime | None = None,
) -> PartitionResult:
    """Load the day partition `day`; returns what was read, loaded, duplicated and rejected."""
    cfg = settings()
    limits = Limits.from_settings()
    zone = Zone(landing_url or cfg.landing_url)
    key = signing_key if signing_key is not None else cfg.signing_key
    now = now or datetime.now(UTC)
    not_before = datetime.combine(day, day_time(), UTC) - limits.stale_after
    landed = zone.list(partition_prefix(day), SUFFIXES)
    results: list[FileResult] = []
    queued_keys: list[pa.Array] = []  # keys already sent to the writer: later copies are duplicates
    taken_hashes: list[pa.Array] = []  # their key_hash values (raw.events' unique key)
    probe_seconds: list[float] = []  # per file, looking up known keys in raw.events
    rejects: list[pa.Table] = []
    clock = {"start": time.perf_counter()}

    conninfo = conninfo or warehouse.url()
    # Two sessions: `conn` holds the load's one transaction (COPY, quarantine, ledger); `probe`
    # looks up known keys from the main thread while the writer thread COPYs on `conn`. `probe`
    # takes the write lock before its first lookup and keeps it until `conn` has committed
    # (it closes last), so no other loader commits a key between a lookup and its COPY.
    with warehouse.connect(conninfo) as probe, warehouse.connect(conninfo) as conn:
        for session in (conn, probe):
            session.execute("select set_config('application_name', %s, false)", [APPLICATION_NAME])
        conn.execute("select pg_advisory_xact_lock(hashtext('meterline.events.load'), %s)", [day.toordinal()])
        seen = set(
            conn.execute(
                "select source_file, checksum from raw.ingested_files where feed = 'events' and source_file = any(%s)",
                [[f.path for f in landed]],
            ).fetchall()
        )
        known_subscriptions = pa.array(
            [r[0] for r in conn.execute("select distinct subscription_id::text from raw.catalog_subscriptions")],
            pa.string(),
        )
        known_types = pa.array(
            [r[0] for r in conn.execute("select distinct event_type from raw.catalog_metrics")], pa.string()
        )

        writer = _Writer(conn, day)
        writer.start()
        write_locked = False  # taken before the first key lookup, not while the first file is read
        try:
            for landed_file in landed:
                try:
                    data = zone.read_bytes(landed_file.path)
                except OSError as exc:
                    results.append(FileResult(landed_file.path, "", file_format(landed_file.path), landed_file.size))
                    results[-1].error, results[-1].io_error = f"{type(exc).__name__}: {exc}", True
                    log.error("%s: cannot be read, not loaded: %s", landed_file.path, results[-1].error)
                    continue
                result = FileResult(
                    landed_file.path, hashlib.sha256(data).hexdigest(), file_format(landed_file.path), len(data)
                )
                results.append(result)
                if (result.path, result.checksum) in seen:
                    result.skipped = True
                    log.info("%s: already ingested (same checksum), skipped", result.path)
                    continue
                try:
                    batch = _parse(result.path, data, limits)
                except _UNREADABLE as exc:
                    # Not recorded in the ledger: a fixed re-delivery, or a retry, reads it again.
                    result.error = f"{type(exc).__name__}: {exc}"
                    log.error("%s: unreadable, not loaded: %s", result.path, result.error)
                    continue
                reason, ts = validate(
                    batch,
                    known_subscriptions=known_subscriptions,
                    known_event_types=known_types,
                    now=now,
                    signing_key=key,
                    not_before=not_before,
                    limits=limits,
                    jsonb_fits=_jsonb_fits(probe),
                )
                ok = pc.is_null(reason)
                result.rows_read = batch.num_rows
                n_good = pc.sum(ok).as_py() or 0
                cols = batch.columns
                good = accepted_rows(batch, ts, ok)
                good = _first_seen(good)
                if queued_keys:
                    good = good.filter(pc.invert(pc.is_in(good["idempotency_key"], pa.concat_arrays(queued_keys))))
                queued_keys.append(good["idempotency_key"].combine_chunks())
                if not write_locked:
                    # Writers of all partitions queue here, so "first seen" follows commit order
                    # and no two loaders race on a key (the unique key_hash would refuse it anyway).
                    probe.execute("select pg_advisory_xact_lock(hashtext('meterline.events.write'))")
                    write_locked = True
                started = time.perf_counter()
                good, _ = _known_keys(probe, good, taken_hashes)
                taken_hashes.append(good["key_hash"].combine_chunks())
                probe_seconds.append(time.perf_counter() - started)
                result.duplicates = n_good - good.num_rows
                writer.queue.put(good)
                if n_good < batch.num_rows:
                    bad = pc.indices_nonzero(pc.invert(ok))
                    reasons = reason.take(bad)
                    result.rejected.update(reasons.to_pylist())
                    rejects.append(
                        pa.table(
                            {
                                "source_file": pa.repeat(pa.scalar(result.path), len(bad)),
                                "checksum": pa.repeat(pa.scalar(result.checksum), len(bad)),
                                "line_no": batch.line_no.take(bad),
                                "reason": reasons,
                                "raw_record": _no_nul(pa.array(raw_records(batch, bad.to_pylist()), pa.string())),
                                "idempotency_key": _no_nul(cols["idempotency_key"].take(bad)),
                                "timestamp": ts.take(bad),
                                "partition_date": pa.repeat(pa.scalar(day, pa.date32()), len(bad)),
                            }
                        )
                    )
                    for line, why in list(zip(batch.line_no.take(bad).to_pylist(), reasons.to_pylist(), strict=True))[
                        :_LOGGED_REJECTIONS
                    ]:
                        log.warning("%s line %s: rejected, %s", result.path, line, why)
        finally:
            clock["read"] = time.perf_counter()
            writer.finish()
        clock["write"] = time.perf_counter()
        loaded, loaded_at = writer.loaded, writer.loaded_at or conn.execute("select clock_timestamp()").fetchone()[0]
        if rejects:
            _copy(conn, "raw.events_rejected", REJECT_COLUMNS, pa.concat_tables(rejects))
        for r in results:
            if r.skipped or r.error:
                continue
            r.rows_loaded = loaded.get(r.path, 0)
            if not r.balanced:  # a loader defect: nothing is committed
                raise RuntimeError(
                    f"{r.path}: rows read {r.rows_read} != loaded {r.rows_loaded} + duplicates {r.duplicates}"
                    f" + rejected {sum(r.rejected.values())}; nothing loaded"
                )
            conn.execute(
                "insert into raw.ingested_files (source_file, checksum, feed, partition_date, file_format, size_bytes,"
                " rows_read, rows_loaded, duplicates, rejected, loaded_at)"
                " values (%s, %s, 'events', %s, %s, %s, %s, %s, %s, %s, %s)",
                [r.path, r.checksum, day, r.file_format, r.size_bytes, r.rows_read, r.rows_loaded, r.duplicates,
                 sum(r.rejected.values()), loaded_at],
            )  # fmt: skip
            log.info(
                "%s: rows read %d, loaded %d, duplicates %d, rejected %d %s",
                r.path,
                r.rows_read,
                r.rows_loaded,
                r.duplicates,
                sum(r.rejected.values()),
                dict(r.rejected) or "",
            )
    clock["record"] = time.perf_counter()  # the commit included
    stages = list(clock)
    seconds = {b: round(clock[b] - clock[a], 3) for a, b in pairwise(stages)}
    seconds |= {"probe": round(sum(probe_seconds), 3)} | {f"writer {k}": round(v, 3) for k, v in writer.seconds.items()}
    outcome = PartitionResult(day, results, seconds)
    log.info(outcome.summary())
    return outcome
