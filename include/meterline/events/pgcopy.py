"""PostgreSQL binary COPY data from an Arrow table, built column-wise in Arrow and numpy.

PostgreSQL parses binary COPY far faster than text: a uuid, a timestamp or an integer arrives as
the bytes it is stored as, where text needs a parse per value (the timestamp parser most of all).
The format (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"): a header,
then per row an int16 field count and per field an int32 byte length (-1 for NULL) and the value
in the type's binary send/receive format, all big-endian; then an int16 -1 trailer.

Each field is encoded for all rows at once (length prefixes and values as numpy byte matrices,
strings as they are in Arrow's buffers) and Arrow's `binary_join_element_wise` lays a row's fields
side by side, so a row's bytes are contiguous in the joined array's data buffer: that buffer is the
COPY body. No Python loop per row.

Types supported: uuid (from canonical 36-character text, any case), text, jsonb (from JSON text),
timestamptz (Arrow timestamp; sent as microseconds since 2000-01-01 UTC), int4, date.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, extension
TRAILER = b"\xff\xff"
_NULL = pa.scalar(b"\xff\xff\xff\xff", pa.large_binary())
_NOTHING = pa.scalar(b"", pa.large_binary())  # the separator between joined fields
_JSONB_VERSION = b"\x01"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970-01-01
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
_UUID_HEX_POSITIONS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])
_NIBBLE = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i

TYPES = ("uuid", "text", "jsonb", "timestamptz", "int4", "date")


def _binary(values: np.ndarray) -> pa.Array:
    """Each row of an (n, w) uint8 matrix as one binary value."""
    n, width = values.shape
    data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, data]).cast(pa.large_binary())


def _prefixed(values: np.ndarray) -> pa.Array:
    """Rows of fixed width w (an (n, w) uint8 matrix) as fields: int32 w, then the w bytes."""
    n, width = values.shape
    out = np.empty((n, 4 + width), np.uint8)
    out[:, :4] = np.frombuffer(np.array([width], ">i4").tobytes(), np.uint8)
    out[:, 4:] = values
    return _binary(out)


def _big_endian(values: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(len(values), -1)


def _string_bytes(column: pa.Array, width: int) -> np.ndarray:
    """The bytes of a string column whose every value is `width` bytes long, as an (n, width) matrix."""
    column = column.cast(pa.large_binary()) if pa.types.is_large_string(column.type) else column
    n = len(column)
    offsets_type = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    offsets = np.frombuffer(column.buffers()[1], offsets_type)[column.offset : column.offset + n + 1]
    if n and not (np.diff(offsets) == width).all():
        raise ValueError(f"expected values of exactly {width} bytes")
    data = np.frombuffer(column.buffers()[2], np.uint8) if n else np.empty(0, np.uint8)
    return data[offsets[0] : offsets[0] + n * width].reshape(n, width)


def _uuid(column: pa.Array) -> np.ndarray:
    nibbles = _NIBBLE[_string_bytes(column.fill_null("0" * 36), 36)[:, _UUID_HEX_POSITIONS]]
    if (nibbles == 255).any():
        raise ValueError("a uuid that is not in canonical 8-4-4-4-12 hex form")
    return (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]


def _variable(column: pa.Array, lead: bytes = b"") -> pa.Array:
    """Text as its bytes led by their int32 length (and `lead`, e.g. jsonb's version byte)."""
    column = column.cast(pa.large_binary())
    lengths = pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False) + len(lead)
    parts = [_binary(_big_endian(lengths, ">i4"))]
    if lead:
        parts.append(pa.scalar(lead, pa.large_binary()))
    return pc.binary_join_element_wise(*parts, column, _NOTHING)


def _field(column: pa.Array, pg_type: str) -> pa.Array:
    if pg_type == "uuid":
        encoded = _prefixed(_uuid(column))
    elif pg_type == "text":
        encoded = _variable(column)
    elif pg_type == "jsonb":
        encoded = _variable(column, _JSONB_VERSION)
    elif pg_type == "timestamptz":
        micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).fill_null(0).to_numpy()
        encoded = _prefixed(_big_endian(micros - _PG_EPOCH_US, ">i8"))
    elif pg_type == "int4":
        encoded = _prefixed(_big_endian(column.cast(pa.int32()).fill_null(0).to_numpy(), ">i4"))
    elif pg_type == "date":
        days = column.cast(pa.date32()).cast(pa.int32()).fill_null(0).to_numpy()
        encoded = _prefixed(_big_endian(days - _PG_EPOCH_DAYS, ">i4"))
    else:
        raise ValueError(f"binary COPY of {pg_type!r} is not supported (only {', '.join(TYPES)})")
    if column.null_count:
        encoded = pc.if_else(pc.is_valid(column), encoded, _NULL)
    return encoded


def rows(table: pa.Table, pg_types: list[str], rows_per_chunk: int = 65_536) -> Iterator[memoryview]:
    """The COPY body for `table` (columns in COPY order, `pg_types` one per column), in chunks of
    `rows_per_chunk` rows; send HEADER first and TRAILER last."""
    if len(pg_types) != table.num_columns:
        raise ValueError(f"{table.num_columns} columns but {len(pg_types)} types")
    field_count = pa.scalar(np.array([table.num_columns], ">i2").tobytes(), pa.large_binary())
    for start in range(0, table.num_rows, rows_per_chunk):
        chunk = table.slice(start, rows_per_chunk)
        fields = [_field(chunk.column(i).combine_chunks(), t) for i, t in enumerate(pg_types)]
        joined = pc.binary_join_element_wise(field_count, *fields, _NOTHING)
        offsets = np.frombuffer(joined.buffers()[1], np.int64)[joined.offset : joined.offset + len(joined) + 1]
        yield memoryview(joined.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
