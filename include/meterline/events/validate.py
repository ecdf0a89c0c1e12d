"""Reading one event dump into Arrow and validating it with vectorised Arrow compute.

`read(zone, path)` gives an `Batch`: the rows as strings (plus a typed timestamp when the file
has one), their 1-based line (JSON Lines) or row (Parquet) numbers, and the raw record of each
line for quarantine. `validate(batch, ...)` gives one reason per row (null = valid), computed
column-wise: the first failing check names the row's reason.

JSON Lines are split into lines in C and each line decoded by msgspec into the fields we read
(`_Line`) — the only per-row Python step, needed to tell a malformed line from its neighbours; a
line msgspec refuses is read again by `json.loads`. The checks themselves never loop in Python.
The exceptions: the HMAC signature check, which hashes each row (only when
`METERING_SIGNING_KEY` is set), and the rare properties holding a `\\u` escape or a NUL, decoded
one by one to find what PostgreSQL's jsonb would refuse.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from meterline.events.signing import verify
from meterline.landing import Zone

REQUIRED = ("event_id", "idempotency_key", "subscription_id", "event_type", "timestamp")
STRING_FIELDS = ("event_id", "idempotency_key", "subscription_id", "event_type", "signature")
QUANTITIES = ("tokens", "bytes", "duration_ms")
FUTURE_TOLERANCE = timedelta(minutes=5)
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
TS_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
TS_TYPE = pa.timestamp("us", tz="UTC")
# A key is at most 200 characters without control characters (NUL cannot be stored at all).
KEY_FORBIDDEN = r"[\x00-\x1f\x7f]"
KEY_MAX_LENGTH = 200


@dataclass
class Batch:
    """One file's rows, before validation."""

    path: str
    file_format: str
    columns: dict[str, pa.Array]  # STRING_FIELDS as strings, `properties` as JSON text
    timestamp: pa.Array  # strings (JSON Lines) or timestamps (Parquet)
    line_no: pa.Array
    raw: pa.Array | None  # the line as read (JSON Lines); Parquet rows are rendered on demand
    parse_error: pa.Array  # a reason when the line could not be decoded at all, else null

    @property
    def num_rows(self) -> int:
        return len(self.line_no)


def file_format(path: str) -> str:
    return "parquet" if path.endswith(".parquet") else "jsonl"


def _as_text(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


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


def _read_line_slowly(line: bytes) -> tuple[_Line, bytes, bool]:
    """A line msgspec would not take as a `_Line` (not JSON, not an object, a field of another
    type, invalid UTF-8, NaN): decoded by `json.loads`, other types turned into their JSON text
    (so an event_id of 123 fails as an invalid uuid, not as malformed). Returns the line, its
    raw text (invalid UTF-8 replaced) and whether it is malformed JSON."""
    text = line.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
        # A lone surrogate escape decodes but has no UTF-8 form: not storable, not interoperable.
        json.dumps(obj, ensure_ascii=False).encode()
    except (ValueError, UnicodeEncodeError):
        obj = None
    if not isinstance(obj, dict):
        return _Line(), text.encode(), True
    props = obj.get("properties")
    fields = {name: _as_text(obj.get(name)) for name in (*STRING_FIELDS, "timestamp")}
    properties = msgspec.Raw(json.dumps(props, separators=(",", ":")).encode())
    return _Line(**fields, properties=properties), text.encode(), False


def read_jsonl(path: str, data: bytes) -> Batch:
    """One record per non-blank line, numbered from 1 as lines of the file. Each line is decoded
    by msgspec straight into `_Line` (C, no dict per line, properties not re-serialised); only a
    line it refuses is decoded again by `json.loads` to tell malformed from merely mistyped."""
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        data.decode("utf-8")  # one check for the file; msgspec does not look inside ignored fields
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    records: list[_Line] = []
    raw: list[bytes] = []
    numbers: list[int] = []
    malformed: list[int] = []  # indices among records
    for number, line in enumerate(lines, start=1):
        try:
            if not utf8:
                line.decode("utf-8")
            records.append(_decode_line(line))
            raw.append(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            if not line.strip():
                continue  # blank lines are not records
            record, text, bad_json = _read_line_slowly(line)
            if bad_json:
                malformed.append(len(records))
            records.append(record)
            raw.append(text)
        numbers.append(number)
    columns = {
        name: pa.array([getattr(r, name) for r in records], pa.string()) for name in (*STRING_FIELDS, "timestamp")
    }
    properties = pa.array([bytes(r.properties) for r in records], pa.binary()).cast(pa.string())
    properties = pc.if_else(pc.equal(properties, "null"), "{}", properties)  # absent or null: empty
    parse_error = pc.if_else(_marked(len(records), malformed), "malformed_json", pa.nulls(len(records), pa.string()))
    return Batch(
        path=path,
        file_format="jsonl",
        columns={name: columns[name] for name in STRING_FIELDS} | {"properties": properties},
        timestamp=columns["timestamp"],
        line_no=pa.array(numbers, pa.int32()),
        raw=pa.array(raw, pa.binary()).cast(pa.string()),
        parse_error=parse_error,
    )


def read_parquet(path: str, stream) -> Batch:
    table = pq.read_table(stream)
    n = table.num_rows
    columns = {}
    for name in (*STRING_FIELDS, "properties"):
        if name in table.column_names:
            col = table[name].combine_chunks()
            columns[name] = col if pa.types.is_string(col.type) else col.cast(pa.string())
        else:
            columns[name] = pa.nulls(n, pa.string())
    if "properties" in table.column_names:
        columns["properties"] = pc.if_else(pc.is_null(columns["properties"]), "{}", columns["properties"])
    ts = table["timestamp"].combine_chunks() if "timestamp" in table.column_names else pa.nulls(n, pa.string())
    if pa.types.is_timestamp(ts.type):
        ts = ts.cast(TS_TYPE) if ts.type.tz else pc.assume_timezone(ts, "UTC").cast(TS_TYPE)
    elif not pa.types.is_string(ts.type):
        ts = ts.cast(pa.string())
    return Batch(
        path=path,
        file_format="parquet",
        columns=columns,
        timestamp=ts,
        line_no=pa.array(range(1, n + 1), pa.int32()),
        raw=None,
        parse_error=pa.nulls(n, pa.string()),
    )


def read(zone: Zone, path: str) -> Batch:
    if file_format(path) == "parquet":
        with zone.open(path) as stream:
            return read_parquet(path, stream)
    return read_jsonl(path, zone.read_bytes(path))


def raw_records(batch: Batch, indices: list[int]) -> list[str]:
    """The records of some rows as found: the line itself, or a Parquet row as JSON."""
    if batch.raw is not None:
        return batch.raw.take(pa.array(indices, pa.int64())).to_pylist()
    take = pa.array(indices, pa.int64())
    rows = pa.table({**{k: v.take(take) for k, v in batch.columns.items()}, "timestamp": batch.timestamp.take(take)})
    return [json.dumps(row, default=str, sort_keys=True) for row in rows.to_pylist()]


def parse_timestamps(values: pa.Array) -> pa.Array:
    """UTC timestamps; null where the text is not an ISO 8601 instant with a zone."""
    if pa.types.is_timestamp(values.type):
        return values
    shaped = pc.if_else(pc.match_substring_regex(values, TS_RE), values, pa.scalar(None, pa.string()))
    try:
        return pc.cast(shaped, TS_TYPE)
    except pa.ArrowInvalid:  # well-shaped but impossible (Feb 30): parse those rows one by one
        out = []
        for text in shaped.to_pylist():
            try:
                out.append(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC) if text else None)
            except ValueError:
                out.append(None)
        return pa.array(out, TS_TYPE)


def _quantities_slow(props: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
    ok, values = [], {q: [] for q in QUANTITIES}
    for text in props.to_pylist():
        try:
            obj = json.loads(text) if text is not None else None
        except ValueError:
            obj = None
        good = isinstance(obj, dict)
        row = {}
        for q in QUANTITIES:
            v = obj.get(q) if good else None
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
                good = False
            row[q] = v if good else None
        ok.append(good)
        for q in QUANTITIES:
            values[q].append(row[q])
    return pa.array(ok), {q: pa.array(v, pa.float64()) for q, v in values.items()}


def quantities(props: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
    """Whether each properties text is a JSON object with numeric quantities, and the quantities.

    Fast path: all texts parsed at once by Arrow's JSON reader (one object per line); any row it
    cannot type (not an object, a non-numeric quantity) sends the file to the row-by-row path.
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
                values = {q: table[q].combine_chunks() for q in QUANTITIES}
                finite = [pc.all(pc.fill_null(pc.is_finite(v), True)).as_py() for v in values.values()]
                if all(finite):
                    return pa.array([True] * len(texts)), values
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


def _jsonb_takes(text: str) -> bool:
    try:
        for s in _strings(json.loads(text)):
            if "\x00" in s:
                return False
            s.encode()  # a lone surrogate has no UTF-8 form
    except (ValueError, UnicodeEncodeError):
        return False
    return True


def storable_as_jsonb(props: pa.Array) -> pa.Array:
    """False where PostgreSQL would refuse the text as jsonb, failing the whole COPY: a NUL, raw
    or escaped (`\\u0000`), or a lone surrogate escape. Only texts holding a NUL or a `\\u`
    escape (rare) are decoded, one by one."""
    suspect = pc.or_(pc.match_substring(props, "\\u"), pc.match_substring(props, "\x00"))
    suspects = pc.indices_nonzero(pc.fill_null(suspect, False)).to_pylist()
    return pc.invert(_marked(len(props), [i for i in suspects if not _jsonb_takes(props[i].as_py())]))


def validate(
    batch: Batch,
    *,
    known_subscriptions: pa.Array,
    known_event_types: pa.Array,
    now: datetime,
    signing_key: str | None = None,
) -> tuple[pa.Array, pa.Array]:
    """(reason per row — null when valid —, parsed UTC timestamps)."""
    n = batch.num_rows
    cols = batch.columns
    ts = parse_timestamps(batch.timestamp)
    # An undecodable line already has its reason; its properties need no second look.
    props_ok, qty = quantities(pc.if_else(pc.is_valid(batch.parse_error), "{}", cols["properties"]))
    # Checks in priority order: the first that fails names the reason.
    checks: list[tuple[str, pa.Array]] = [("malformed_json", pc.is_valid(batch.parse_error))]
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
    checks.append(("invalid_timestamp", pc.is_null(ts)))
    checks.append(("invalid_properties", pc.invert(pc.and_(props_ok, storable_as_jsonb(cols["properties"])))))
    checks.append(("invalid_signature", pc.match_substring(cols["signature"], "\x00")))  # text cannot hold NUL
    checks.append(("future_timestamp", pc.greater(ts, pa.scalar(now + FUTURE_TOLERANCE, TS_TYPE))))
    checks.append(
        ("unknown_subscription", pc.invert(pc.is_in(pc.utf8_lower(cols["subscription_id"]), known_subscriptions)))
    )
    checks.append(("unknown_event_type", pc.invert(pc.is_in(cols["event_type"], known_event_types))))
    negative = pa.array([False] * n)
    for values in qty.values():
        negative = pc.or_(negative, pc.fill_null(pc.less(values, 0), False))
    checks.append(("negative_quantity", negative))

    reason = pa.nulls(n, pa.string())
    for name, failed in reversed(checks):  # earlier checks overwrite later ones
        reason = pc.if_else(pc.fill_null(failed, False), pa.scalar(name), reason)

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
