"""Reading one event dump into Arrow and validating it with vectorised Arrow compute.

`read_jsonl(path, data)` and `read_parquet(path, stream)` give a `Batch`: the rows as strings
(plus a typed timestamp when the file has one), their 1-based line (JSON Lines) or row (Parquet)
numbers, the raw record of each line for quarantine, and a reason for the rows that could not be
read as records at all. `validate(batch, ...)` gives one reason per row (null = valid), computed
column-wise: the first failing check names the row's reason.

Neither raises on what a file holds: every row of the file is a row of the batch, good or with
its reason, so read = loaded + duplicates + rejected can hold for every file. Only a file that
cannot be opened at all (not gzip, not Parquet) raises, and the loader names it.

Bounds (`Limits`, from the environment; the defaults are PostgreSQL's own limits):
- a file decompresses to at most `EVENTS_MAX_FILE_BYTES` (2 GiB - 1, what one Arrow array of
  the file's lines holds): past it, reading stops, and the rest of the file is one rejected row
  (`file_too_large`, at the line where reading stopped). Parquet is held to the uncompressed
  sizes its row groups declare. So a gzip bomb costs at most that much decompression;
- a line of more than `EVENTS_MAX_LINE_BYTES` (1 GiB - 1, PostgreSQL's largest field) is
  `line_too_long`; a Parquet row whose fields add up to more, too;
- `properties` longer than `EVENTS_MAX_PROPERTIES_BYTES` (256 MiB - 1, the largest jsonb) is
  `properties_too_large`; a text between a sixth of jsonb's limit and that (jsonb stores a
  one-digit number in up to 6 times its text) is put to PostgreSQL itself (`jsonb_fits`);
- JSON nested deeper than `MAX_NESTING` levels is `nesting_too_deep` (Python's decoders
  recurse, PostgreSQL's parser stops at its stack depth);
- a timestamp more than `EVENTS_STALE_AFTER_DAYS` (90) days before the partition's day is
  `stale_timestamp` (a year 0001 or 1969 is a broken clock, not a late event); one more than
  5 minutes after the load's `now` is `future_timestamp`;
- a quantity (`tokens`, `bytes`, `duration_ms`) that is not finite or above `QUANTITY_MAX` is
  `quantity_out_of_range` (see there why 10**15).

Timestamps must name their zone. A JSON Lines timestamp without an offset is
`timestamp_without_zone`, and so is a Parquet timestamp column without a time zone: Parquet
calls those "local" times (`isAdjustedToUTC = false`), and taking them as UTC would move events
across hours, days and billing months whenever the writer's clock was not UTC. The exception is
INT96, the legacy Spark/Hive/Impala encoding, which by convention holds UTC instants.

JSON Lines are split into lines in C and each line decoded by msgspec into the fields we read
(`_Line`) — the only per-row Python step, needed to tell a malformed line from its neighbours; a
line msgspec refuses is read again by `json.loads`. Runs of empty lines are skipped in C. The
checks themselves never loop in Python. The exceptions: the HMAC signature check, which hashes
each row (only when `METERING_SIGNING_KEY` is set), and the rare properties holding a `\\u`
escape, a NUL, `NaN`/`Infinity` or very deep nesting, decoded one by one.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import compress, count

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from meterline.events.signing import verify
from meterline.money import AMOUNT_DIGITS, PRICE_SCALE

REQUIRED = ("event_id", "idempotency_key", "subscription_id", "event_type", "timestamp")
STRING_FIELDS = ("event_id", "idempotency_key", "subscription_id", "event_type", "signature")
QUANTITIES = ("tokens", "bytes", "duration_ms")
FUTURE_TOLERANCE = timedelta(minutes=5)
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
TS_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
TS_WITHOUT_ZONE_RE = r"^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?\s*$"
TS_TYPE = pa.timestamp("us", tz="UTC")
# A key is at most 200 characters without control characters (NUL cannot be stored at all).
KEY_FORBIDDEN = r"[\x00-\x1f\x7f]"
KEY_MAX_LENGTH = 200

# The largest quantity an event may carry: what the warehouse prices exactly. An amount is
# quantity x unit price and is exact below money.MAX_AMOUNT (10**22: 28 digits of Decimal, 6 of
# them decimals); allowing unit prices up to 7 integer digits (9,999,999.999999 per unit, far
# above any metered price) leaves 22 - 7 = 15 integer digits for the quantity. 10**15 is also
# below 2**53, so the float64 the bound is checked in holds every integer up to it exactly.
PRICE_INTEGER_DIGITS = 7
QUANTITY_MAX = 10 ** (AMOUNT_DIGITS - PRICE_SCALE - PRICE_INTEGER_DIGITS)
# jsonb's largest value (PostgreSQL: "total size of jsonb ... exceeds the maximum of 268435455
# bytes"), and how much larger than its text a jsonb can be (a one-digit number: 2 bytes of
# text, 4 of entry and up to 8 of aligned numeric). Shorter texts always fit.
JSONB_MAX_BYTES = 2**28 - 1
JSONB_TEXT_RATIO = 6
MAX_NESTING = 256
# A rejected row keeps at most this much of its record (a line may be up to 1 GiB).
RAW_RECORD_MAX = 64 * 1024
_READ_CHUNK = 64 << 20


@dataclass(frozen=True)
class Limits:
    """Bounds on one file; the defaults are PostgreSQL's (see the module docstring)."""

    max_file_bytes: int = 2**31 - 1
    max_line_bytes: int = 2**30 - 1
    max_properties_bytes: int = JSONB_MAX_BYTES
    stale_after: timedelta = timedelta(days=90)

    @classmethod
    def from_settings(cls) -> Limits:
        from meterline.config import settings

        cfg = settings()
        return cls(
            max_file_bytes=cfg.events_max_file_bytes,
            max_line_bytes=cfg.events_max_line_bytes,
            max_properties_bytes=cfg.events_max_properties_bytes,
            stale_after=timedelta(days=cfg.events_stale_after_days),
        )


@dataclass
class Batch:
    """One file's rows, before validation."""

    path: str
    file_format: str
    columns: dict[str, pa.Array]  # STRING_FIELDS as strings, `properties` as JSON text
    timestamp: pa.Array  # strings (JSON Lines) or timestamps (Parquet)
    line_no: pa.Array
    raw: pa.Array | None  # the line as read (JSON Lines); Parquet rows are rendered on demand
    parse_error: pa.Array  # a reason when the row could not be read as a record at all, else null

    @property
    def num_rows(self) -> int:
        return len(self.line_no)


def file_format(path: str) -> str:
    return "parquet" if path.endswith(".parquet") else "jsonl"


def _as_text(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _clip(text: bytes | str, limit: int = RAW_RECORD_MAX) -> str:
    """A record as kept in quarantine: whole, or its head and its full size, `limit` long in all
    (so cutting it again changes nothing)."""
    if len(text) <= limit:
        return text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    note = f"... [{len(text)} bytes in all, cut at {limit}]"
    head = text[: limit - len(note)]
    return (head if isinstance(head, str) else head.decode("utf-8", errors="ignore")) + note


class _Line(msgspec.Struct, gc=False):
    """The fields a JSON Lines record is read for (others are ignored), typed as a well-formed
    line has them; `properties` kept as its JSON text, exactly as written."""

    event_id: str | None = None
    idempotency_key: str | None = None
    subscription_id: str | None = None
    event_type: str | None = None
    signature: str | None = None
    timestamp: str | None = None
    properties: msgspec.Raw = msgspec.Raw(b"null")


_decode_line = msgspec.json.Decoder(_Line).decode


def _read_line_slowly(line: bytes) -> tuple[_Line, bytes, str | None]:
    """A line msgspec would not take as a `_Line` (not JSON, not an object, a field of another
    type, invalid UTF-8, NaN): decoded by `json.loads`, other types turned into their JSON text
    (so an event_id of 123 fails as an invalid uuid, not as malformed). Returns the line, its
    raw text (invalid UTF-8 replaced) and why it is not a record, if it is not."""
    text = line.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
        # A lone surrogate escape decodes but has no UTF-8 form: not storable, not interoperable.
        json.dumps(obj, ensure_ascii=False).encode()
    except RecursionError:
        return _Line(), text.encode(), "nesting_too_deep"
    except (ValueError, UnicodeEncodeError):
        obj = None
    if not isinstance(obj, dict):
        return _Line(), text.encode(), "malformed_json"
    props = obj.get("properties")
    fields = {name: _as_text(obj.get(name)) for name in (*STRING_FIELDS, "timestamp")}
    properties = msgspec.Raw(json.dumps(props, separators=(",", ":")).encode())
    return _Line(**fields, properties=properties), text.encode(), None


def _decompressed(path: str, data: bytes, limit: int) -> tuple[bytes, bool]:
    """The file's bytes, decompressed when gzipped, at most `limit` of them; and whether there
    was more. Decompression stops at the limit, so a bomb costs no more than that."""
    if not path.endswith(".gz"):
        return (data, False) if len(data) <= limit else (data[:limit], True)
    parts, total = [], 0
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        while total < limit and (part := stream.read(min(_READ_CHUNK, limit - total))):
            parts.append(part)
            total += len(part)
        more = total >= limit and bool(stream.read(1))
    return (parts[0] if len(parts) == 1 else b"".join(parts)), more


_EMPTY_LINES = re.compile(rb"\n+")
# An event line is well over this long: a file of shorter lines on average is mostly empty lines.
_SHORT_LINE = 16


def _lines(text: bytes, start: int) -> tuple[Sequence[int], list[bytes], int]:
    """The non-empty lines of `text` from byte `start`, their 1-based numbers, and the number
    the next line would have. One split in C for a file of event lines; a file made mostly of
    newlines is walked by runs instead, each run of empty lines skipped by one regex match (C):
    100 MB of newlines take a fraction of a second and no list of 100 million lines."""
    body = text[start:] if start else text
    if body.count(b"\n") * _SHORT_LINE <= len(body):
        parts = body.split(b"\n")
        if parts[-1] == b"":  # the file's final newline ends a line, it starts none
            parts.pop()
        if b"" not in parts:
            return range(1, len(parts) + 1), parts, len(parts) + 1
        return list(compress(count(1), parts)), list(filter(None, parts)), len(parts) + 1
    numbers: list[int] = []
    lines: list[bytes] = []
    number, pos, end = 1, 0, len(body)
    while pos < end:
        if body[pos] == 0x0A:
            run = _EMPTY_LINES.match(body, pos)
            number += run.end() - pos
            pos = run.end()
            continue
        blank = body.find(b"\n\n", pos)
        stop = end if blank < 0 else blank
        parts = body[pos:stop].split(b"\n")
        if parts[-1] == b"":
            parts.pop()
        numbers.extend(range(number, number + len(parts)))
        lines.extend(parts)
        number += len(parts)
        pos = stop + 1
    return numbers, lines, number


def read_jsonl(path: str, data: bytes, limits: Limits | None = None) -> Batch:
    """One record per non-blank line, numbered from 1 as lines of the file. Each line is decoded
    by msgspec straight into `_Line` (C, no dict per line, properties not re-serialised); only a
    line it refuses is decoded again by `json.loads` to tell malformed from merely mistyped."""
    limits = limits or Limits()
    text, cut = _decompressed(path, data, limits.max_file_bytes)
    if cut:  # a line the limit cut in two is part of the rest, not a record
        text = text[: text.rfind(b"\n") + 1]
    # A byte-order mark is not part of the first line (Windows tools write one).
    numbers, lines, next_number = _lines(text, len(codecs.BOM_UTF8) if text.startswith(codecs.BOM_UTF8) else 0)
    try:
        text.decode("utf-8")  # one check for the file; msgspec does not look inside ignored fields
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    too_long = limits.max_line_bytes
    any_too_long = len(text) > too_long
    records: list[_Line] = []
    raw: list[bytes] = []
    kept: list[int] = []
    errors: dict[str, list[int]] = {}  # reason -> indices among records
    for number, line in zip(numbers, lines, strict=True):
        error = None
        try:
            if any_too_long and len(line) > too_long:
                record, error = _Line(), "line_too_long"
                line = _clip(line).encode()
            else:
                if not utf8:
                    line.decode("utf-8")
                record = _decode_line(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            if not line.strip():
                continue  # blank lines are not records
            record, line, error = _read_line_slowly(line)
        except RecursionError:
            record, error = _Line(), "nesting_too_deep"
        if error:
            errors.setdefault(error, []).append(len(records))
        records.append(record)
        raw.append(line)
        kept.append(number)
    if cut:
        # What lies past the limit is not read: one row says so, at the line where reading stopped.
        errors.setdefault("file_too_large", []).append(len(records))
        records.append(_Line())
        raw.append(f"not read: {path} decompresses to more than {limits.max_file_bytes} bytes; lines from here on")
        raw[-1] = raw[-1].encode()
        kept.append(next_number)
    columns = {
        name: pa.array([getattr(r, name) for r in records], pa.string()) for name in (*STRING_FIELDS, "timestamp")
    }
    properties = pa.array([bytes(r.properties) for r in records], pa.binary()).cast(pa.string())
    properties = pc.if_else(pc.equal(properties, "null"), "{}", properties)  # absent or null: empty
    return Batch(
        path=path,
        file_format="jsonl",
        columns={name: columns[name] for name in STRING_FIELDS} | {"properties": properties},
        timestamp=columns["timestamp"],
        line_no=pa.array(kept, pa.int32()),
        raw=pa.array(raw, pa.binary()).cast(pa.string()),
        parse_error=_reasons(len(records), errors),
    )


def _reasons(n: int, at: dict[str, list[int]]) -> pa.Array:
    reason = pa.nulls(n, pa.string())
    for name, indices in at.items():
        reason = pc.if_else(_marked(n, indices), pa.scalar(name), reason)
    return reason


def _render(column: pa.Array) -> pa.Array:
    """Any Arrow column as text: a cast where Arrow has one, else each value's JSON (a struct
    `properties` becomes its JSON object), else Arrow's own rendering of it."""
    if pa.types.is_string(column.type):
        return column
    try:
        return column.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        pass
    try:
        return pa.array(
            [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in column.to_pylist()],
            pa.string(),
        )
    except (ValueError, OverflowError, TypeError, pa.ArrowException):  # a value Python cannot hold
        return pa.array([None if not s.is_valid else str(s) for s in column], pa.string())


def _instants(ts: pa.Array) -> pa.Array:
    """A zoned timestamp column as UTC microseconds; values microseconds cannot hold are null
    (they are years outside any partition's horizon anyway), sub-microsecond digits dropped."""
    per_us = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}[ts.type.unit]
    if per_us > 1:
        raw = ts.cast(pa.int64())
        bound = (2**63 - 1) // per_us
        fits = pc.and_(pc.greater_equal(raw, -bound), pc.less_equal(raw, bound))
        ts = pc.if_else(fits, ts, pa.scalar(None, ts.type))
    return pc.cast(ts, TS_TYPE, safe=False)


def _column(table: pa.Table, name: str) -> pa.Array | None:
    indices = table.schema.get_all_field_indices(name)
    return table.column(indices[0]).combine_chunks() if indices else None


def read_parquet(path: str, stream, limits: Limits | None = None) -> Batch:
    """The rows of a Parquet file, whatever the types of its columns: known fields as text, a
    timestamp kept typed. Row groups are read while their declared uncompressed size stays
    within the file limit; the rest is one `file_too_large` row."""
    limits = limits or Limits()
    parquet = pq.ParquetFile(stream)
    meta = parquet.metadata
    names = set(parquet.schema_arrow.names)
    wanted = [n for n in (*STRING_FIELDS, "properties", "timestamp") if n in names]
    groups, size = [], 0
    for i in range(meta.num_row_groups):
        size += meta.row_group(i).total_byte_size
        if size > limits.max_file_bytes:
            break
        groups.append(i)
    cut = len(groups) < meta.num_row_groups
    if groups:
        table = parquet.read_row_groups(groups, columns=wanted)
    else:
        table = parquet.schema_arrow.empty_table().select(wanted)
    n = table.num_rows
    columns = {}
    for name in (*STRING_FIELDS, "properties"):
        col = _column(table, name)
        columns[name] = pa.nulls(n, pa.string()) if col is None else _render(col)
    columns["properties"] = pc.if_else(pc.is_null(columns["properties"]), "{}", columns["properties"])
    ts = _column(table, "timestamp")
    if ts is None:
        ts = pa.nulls(n, pa.string())
    elif pa.types.is_timestamp(ts.type):
        int96 = any(
            parquet.schema.column(i).path == "timestamp" and parquet.schema.column(i).physical_type == "INT96"
            for i in range(len(parquet.schema))
        )
        if ts.type.tz:
            ts = _instants(ts)
        elif int96:  # Spark, Hive and Impala write INT96 as UTC instants
            ts = _instants(pc.assume_timezone(ts.cast(pa.timestamp(ts.type.unit)), "UTC"))
    else:
        ts = _render(ts)
    errors: dict[str, list[int]] = {}
    if table.nbytes > limits.max_line_bytes:
        row_bytes = np.zeros(n, np.int64)
        for col in columns.values():
            row_bytes += pc.fill_null(pc.binary_length(col), 0).to_numpy(zero_copy_only=False)
        errors["line_too_long"] = np.flatnonzero(row_bytes > limits.max_line_bytes).tolist()
    line_no = pa.array(range(1, n + 1), pa.int32())
    if cut:
        errors["file_too_large"] = [n]
        columns = {k: pa.concat_arrays([v, pa.nulls(1, v.type)]) for k, v in columns.items()}
        ts = pa.concat_arrays([ts, pa.nulls(1, ts.type)])
        line_no = pa.concat_arrays([line_no, pa.array([n + 1], pa.int32())])
    return Batch(
        path=path,
        file_format="parquet",
        columns=columns,
        timestamp=ts,
        line_no=line_no,
        raw=None,
        parse_error=_reasons(len(line_no), errors),
    )


def raw_records(batch: Batch, indices: list[int]) -> list[str]:
    """The records of some rows as found: the line itself, or a Parquet row as JSON; each cut
    at RAW_RECORD_MAX bytes."""
    take = pa.array(indices, pa.int64())
    if batch.raw is not None:
        return [_clip(r) for r in batch.raw.take(take).to_pylist()]
    rows = {k: v.take(take) for k, v in batch.columns.items()}
    rows["timestamp"] = _render(batch.timestamp.take(take))
    rows = pa.table({k: pc.utf8_slice_codeunits(v, 0, RAW_RECORD_MAX) for k, v in rows.items()}).to_pylist()
    return [_clip(json.dumps(row, sort_keys=True, ensure_ascii=False)) for row in rows]


def parse_timestamps(values: pa.Array) -> pa.Array:
    """UTC timestamps; null where the text is not an ISO 8601 instant with a zone, or where a
    typed timestamp has no zone."""
    if pa.types.is_timestamp(values.type):
        return values.cast(TS_TYPE) if values.type.tz else pa.nulls(len(values), TS_TYPE)
    shaped = pc.if_else(pc.match_substring_regex(values, TS_RE), values, pa.scalar(None, pa.string()))
    try:
        return pc.cast(shaped, TS_TYPE)
    except pa.ArrowInvalid:  # well-shaped but impossible (Feb 30): parse those rows one by one
        out = []
        for text in shaped.to_pylist():
            try:
                out.append(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC) if text else None)
            except (ValueError, OverflowError):
                out.append(None)
        return pa.array(out, TS_TYPE)


def _without_zone(values: pa.Array, parsed: pa.Array) -> pa.Array:
    """Rows whose timestamp is a well-formed time that names no zone."""
    if pa.types.is_timestamp(values.type):
        return pc.is_valid(values) if values.type.tz is None else pa.array(np.zeros(len(values), bool))
    unparsed = pc.indices_nonzero(pc.and_(pc.is_null(parsed), pc.is_valid(values)))
    hits = pc.match_substring_regex(values.take(unparsed), TS_WITHOUT_ZONE_RE)
    return _marked(len(values), unparsed.filter(hits).to_pylist())


def _number(value) -> float | None:
    """A JSON number as a float (inf when too large for one); None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _quantities_slow(props: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
    ok, values = [], {q: [] for q in QUANTITIES}
    for text in props.to_pylist():
        try:
            # Integers as floats: int() refuses more than 4300 digits, a float is inf (out of range).
            obj = json.loads(text, parse_int=float) if text is not None else None
        except (ValueError, RecursionError):
            obj = None
        good = isinstance(obj, dict)
        row = {}
        for q in QUANTITIES:
            v = obj.get(q) if good else None
            number = _number(v)
            if v is not None and number is None:
                good = False
            row[q] = number if good else None
        ok.append(good)
        for q in QUANTITIES:
            values[q].append(row[q])
    return pa.array(ok, pa.bool_()), {q: pa.array(v, pa.float64()) for q, v in values.items()}


def quantities(props: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
    """Whether each properties text is a JSON object with numeric quantities, and the quantities
    (as float64: infinite or NaN ones are kept, for the range check to name them).

    Fast path: all texts parsed at once by Arrow's JSON reader (one object per line); any row it
    cannot type (not an object, a non-numeric quantity, a number beyond float64) sends the file
    to the row-by-row path.
    """
    texts = pc.if_else(pc.is_null(props), "null", props)
    if len(texts) == 0:
        return pa.array([], pa.bool_()), {q: pa.array([], pa.float64()) for q in QUANTITIES}
    single_line = not pc.any(pc.match_substring(texts, "\n")).as_py()
    if single_line and pc.all(pc.starts_with(pc.utf8_ltrim_whitespace(texts), "{")).as_py():
        try:
            body = "\n".join(texts.to_pylist()).encode()
            table = pajson.read_json(
                io.BytesIO(body),
                read_options=pajson.ReadOptions(block_size=max(1 << 20, len(body) + 1)),
                parse_options=pajson.ParseOptions(
                    explicit_schema=pa.schema([(q, pa.float64()) for q in QUANTITIES]),
                    unexpected_field_behavior="ignore",
                ),
            )
            if table.num_rows == len(texts):
                return pa.array(np.ones(len(texts), bool)), {q: table[q].combine_chunks() for q in QUANTITIES}
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return _quantities_slow(props)


def _marked(n: int, indices: list[int]) -> pa.Array:
    """A boolean array of `n` rows, true at `indices` (built in numpy, not per row in Python)."""
    mask = np.zeros(n, dtype=bool)
    mask[indices] = True
    return pa.array(mask)


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _jsonb_takes(text: str) -> bool:
    try:
        for s in _strings(json.loads(text, parse_constant=_refuse_constant)):
            if "\x00" in s:
                return False
            s.encode()  # a lone surrogate has no UTF-8 form
    except (ValueError, UnicodeEncodeError, RecursionError):
        return False
    return True


def storable_as_jsonb(props: pa.Array) -> pa.Array:
    """False where PostgreSQL would refuse the text as jsonb, failing the whole COPY: a NUL, raw
    or escaped (`\\u0000`), a lone surrogate escape, or `NaN` / `Infinity` (Python's JSON and
    Arrow's take them, JSON does not). Only texts holding a NUL, a `\\u` escape or one of those
    words (rare) are decoded, one by one."""
    suspect = pc.match_substring_regex(props, r"\\u|\x00|NaN|Infinity")  # one pass over the texts
    suspects = pc.indices_nonzero(pc.fill_null(suspect, False)).to_pylist()
    return pc.invert(_marked(len(props), [i for i in suspects if not _jsonb_takes(props[i].as_py())]))


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _nesting(text: str) -> int:
    """How deep a JSON text nests (brackets inside strings do not count)."""
    codes = np.frombuffer(_JSON_STRING.sub("", text).encode(), np.uint8)
    steps = np.isin(codes, (0x5B, 0x7B)).astype(np.int32) - np.isin(codes, (0x5D, 0x7D))
    return int(np.cumsum(steps).max()) if len(steps) else 0


def too_deep(props: pa.Array, limit: int = MAX_NESTING) -> pa.Array:
    """True where a text nests deeper than `limit`; only texts long enough to, with that many
    opening brackets, are measured (one by one)."""
    long = pc.fill_null(pc.greater(pc.binary_length(props), 2 * limit), False)
    if not pc.any(long).as_py():
        return pa.array(np.zeros(len(props), bool))
    candidates = pc.indices_nonzero(long).to_pylist()
    deep = [i for i in candidates if _nesting(props[i].as_py()) > limit]
    return _marked(len(props), deep)


def too_large(props: pa.Array, max_bytes: int, jsonb_fits: Callable[[str], bool] | None = None) -> pa.Array:
    """True where a properties text is longer than `max_bytes`, or where PostgreSQL (asked by
    `jsonb_fits`, for texts whose jsonb may exceed its limit) would not store it."""
    size = pc.fill_null(pc.binary_length(props), 0)
    over = pc.greater(size, max_bytes)
    if jsonb_fits is None:
        return over
    ask = pc.indices_nonzero(pc.and_(pc.invert(over), pc.greater(size, JSONB_MAX_BYTES // JSONB_TEXT_RATIO)))
    refused = [i for i in ask.to_pylist() if not jsonb_fits(props[i].as_py())]
    return pc.or_(over, _marked(len(props), refused)) if refused else over


def validate(
    batch: Batch,
    *,
    known_subscriptions: pa.Array,
    known_event_types: pa.Array,
    now: datetime,
    signing_key: str | None = None,
    not_before: datetime | None = None,
    limits: Limits | None = None,
    jsonb_fits: Callable[[str], bool] | None = None,
) -> tuple[pa.Array, pa.Array]:
    """(reason per row — null when valid —, parsed UTC timestamps). `not_before`: timestamps
    before it are stale (the partition's day less the horizon); `jsonb_fits`: asks PostgreSQL
    whether it would store a very large properties text."""
    limits = limits or Limits()
    n = batch.num_rows
    cols = batch.columns
    ts = parse_timestamps(batch.timestamp)
    unread = pc.is_valid(batch.parse_error)
    deep = pc.and_(pc.invert(unread), too_deep(cols["properties"]))
    large = pc.and_(pc.invert(unread), too_large(cols["properties"], limits.max_properties_bytes, jsonb_fits))
    # A row already refused needs no second look at its properties (nor a slow one).
    props_ok, qty = quantities(pc.if_else(pc.or_(unread, pc.or_(deep, large)), "{}", cols["properties"]))
    no = pa.array(np.zeros(n, bool))
    out_of_range, negative = no, no
    for values in qty.values():
        out_of_range = pc.or_(
            out_of_range,
            pc.fill_null(pc.or_kleene(pc.invert(pc.is_finite(values)), pc.greater(values, QUANTITY_MAX)), False),
        )
        negative = pc.or_(negative, pc.fill_null(pc.less(values, 0), False))
    # Checks in priority order: the first that fails names the reason.
    checks: list[tuple[str, pa.Array]] = [("nesting_too_deep", deep), ("properties_too_large", large)]
    for name in REQUIRED:
        column = batch.timestamp if name == "timestamp" else cols[name]
        missing = pc.is_null(column)
        if pa.types.is_string(column.type):
            missing = pc.or_kleene(missing, pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0))
        checks.append((f"missing_field:{name}", missing))
    for name in ("event_id", "subscription_id"):
        checks.append((f"invalid_uuid:{name}", pc.invert(pc.match_substring_regex(cols[name], UUID_RE))))
    key = cols["idempotency_key"]
    checks.append(
        (
            "invalid_idempotency_key",
            pc.or_kleene(pc.match_substring_regex(key, KEY_FORBIDDEN), pc.greater(pc.utf8_length(key), KEY_MAX_LENGTH)),
        )
    )
    checks.append(("timestamp_without_zone", _without_zone(batch.timestamp, ts)))
    checks.append(("invalid_timestamp", pc.is_null(ts)))
    checks.append(("quantity_out_of_range", out_of_range))
    checks.append(("invalid_properties", pc.invert(pc.and_(props_ok, storable_as_jsonb(cols["properties"])))))
    checks.append(("invalid_signature", pc.match_substring(cols["signature"], "\x00")))  # text cannot hold NUL
    checks.append(("future_timestamp", pc.greater(ts, pa.scalar(now + FUTURE_TOLERANCE, TS_TYPE))))
    if not_before is not None:
        checks.append(("stale_timestamp", pc.less(ts, pa.scalar(not_before, TS_TYPE))))
    checks.append(
        ("unknown_subscription", pc.invert(pc.is_in(pc.utf8_lower(cols["subscription_id"]), known_subscriptions)))
    )
    checks.append(("unknown_event_type", pc.invert(pc.is_in(cols["event_type"], known_event_types))))
    checks.append(("negative_quantity", negative))

    reason = pa.nulls(n, pa.string())
    for name, failed in reversed(checks):  # earlier checks overwrite later ones
        reason = pc.if_else(pc.fill_null(failed, False), pa.scalar(name), reason)
    reason = pc.if_else(unread, batch.parse_error, reason)  # a row that is no record: why, first

    if signing_key:
        reason = _check_signatures(batch, ts, reason, signing_key)
    return reason, ts


def _check_signatures(batch: Batch, ts: pa.Array, reason: pa.Array, key: str) -> pa.Array:
    """HMAC per row (hashing cannot be vectorised); only rows valid so far are checked."""
    candidates = pc.indices_nonzero(pc.is_null(reason)).to_pylist()
    if not candidates:
        return reason
    take = pa.array(candidates, pa.int64())
    rows = pa.table(
        {
            **{
                k: batch.columns[k].take(take) for k in ("event_id", "idempotency_key", "subscription_id", "event_type")
            },
            "timestamp": ts.take(take),
            "properties": batch.columns["properties"].take(take),
            "signature": batch.columns["signature"].take(take),
        }
    ).to_pylist()
    bad = [
        i
        for i, row in zip(candidates, rows, strict=True)
        if not verify({**row, "properties": json.loads(row["properties"])}, row["signature"], key)
    ]
    return pc.if_else(_marked(len(reason), bad), pa.scalar("bad_signature"), reason) if bad else reason
