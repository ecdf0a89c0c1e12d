"""Property-based tests of the event readers (issue 14): whatever bytes a JSON Lines file holds
and whatever columns a Parquet file has, reading and validating never raise, every line or row
is one row of the batch (good, or rejected with a known reason) and what is accepted can be
encoded for the COPY. Small limits make the bounded paths (file cut, long lines, large
properties) part of the search. Example counts stay modest so CI stays fast."""

from __future__ import annotations

import codecs
import gzip
import json
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meterline.events import pgcopy
from meterline.events.load import EVENT_COLUMNS, _first_seen, accepted_rows
from meterline.events.validate import Limits, read_jsonl, read_parquet, validate

pytestmark = pytest.mark.unit

SUB = "6f1c2d7e-3b0a-4c55-9a1e-0d2f5b8c4e11"
NOW = datetime(2025, 3, 20, tzinfo=UTC)
DAY = date(2025, 3, 4)
REASONS = {
    "malformed_json", "nesting_too_deep", "line_too_long", "file_too_large", "properties_too_large",
    "invalid_uuid:event_id", "invalid_uuid:subscription_id", "invalid_idempotency_key", "timestamp_without_zone",
    "invalid_timestamp", "quantity_out_of_range", "invalid_properties", "invalid_signature", "future_timestamp",
    "stale_timestamp", "unknown_subscription", "unknown_event_type", "negative_quantity", "bad_signature",
    *(f"missing_field:{f}" for f in ("event_id", "idempotency_key", "subscription_id", "event_type", "timestamp")),
}  # fmt: skip
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
good_event = st.fixed_dictionaries(
    {
        "event_id": st.just("00000000-0000-4000-8000-000000000001"),
        "idempotency_key": st.sampled_from(["ik-1", "ik-2", "ik-3"]),
        "subscription_id": st.sampled_from([SUB, SUB.upper(), "not-a-uuid"]),
        "event_type": st.sampled_from(["llm.completion", "other"]),
        "timestamp": st.sampled_from(
            ["2025-03-04T10:15:00Z", "2025-03-04T10:15:00", "0001-01-01T00:00:00Z", "2030-01-01T00:00:00Z", "noon"]
        ),
        "properties": st.dictionaries(st.sampled_from(["tokens", "bytes", "duration_ms", "note"]), json_values),
    }
)
a_line = st.one_of(
    good_event.map(lambda e: json.dumps(e).encode()),
    st.dictionaries(st.text(max_size=10), json_values, max_size=6).map(lambda e: json.dumps(e).encode()),
    st.binary(max_size=80),
    st.integers(1, 1_200).map(lambda d: b'{"properties": ' + b"[" * d + b"]" * d + b"}"),
    st.sampled_from([b"", b"  ", b"\r", b"\xef\xbb\xbf{}", b'{"properties": {"tokens": NaN}}', b"\x00"]),
)
limits = st.builds(
    Limits,
    max_file_bytes=st.sampled_from([40, 400, 4_000, 2**31 - 1]),
    max_line_bytes=st.sampled_from([30, 300, 2**30 - 1]),
    max_properties_bytes=st.sampled_from([20, 200, 2**28 - 1]),
)


def check(batch, limit: Limits) -> None:
    """The batch validates without raising, every row has one outcome with a known reason, and
    the accepted rows, once deduplicated, encode for the COPY."""
    reason, ts = validate(
        batch,
        known_subscriptions=pa.array([SUB]),
        known_event_types=pa.array(["llm.completion"]),
        now=NOW,
        not_before=datetime(2025, 1, 1, tzinfo=UTC),
        limits=limit,
    )
    assert len(reason) == len(ts) == batch.num_rows
    assert set(reason.drop_null().to_pylist()) <= REASONS
    accepted = accepted_rows(batch, ts, pc.is_null(reason))
    assert accepted.num_rows == reason.null_count
    unique = _first_seen(accepted)  # what the COPY would take, before the keys already loaded
    assert len(set(unique["idempotency_key"].to_pylist())) == unique.num_rows
    duplicates, rejected = accepted.num_rows - unique.num_rows, batch.num_rows - reason.null_count
    assert batch.num_rows == unique.num_rows + duplicates + rejected
    columns = EVENT_COLUMNS.copy()
    del columns["partition_date"], columns["loaded_at"]
    b"".join(bytes(chunk) for chunk in pgcopy.rows(unique.select(list(columns)), list(columns.values())))


@EXAMPLES
@given(lines=st.lists(a_line, max_size=12), bom=st.booleans(), gz=st.booleans(), limit=limits)
def test_jsonl_reader_never_raises_and_every_line_is_one_row(lines, bom, gz, limit):
    text = (codecs.BOM_UTF8 if bom else b"") + b"\n".join(lines)
    path = "d.jsonl.gz" if gz else "d.jsonl"
    batch = read_jsonl(path, gzip.compress(text) if gz else text, limit)

    # The oracle: the whole lines within the file limit that hold more than whitespace, numbered
    # from 1, plus one row for the rest (from the line the limit cut) when the file was cut.
    cut = len(text) > limit.max_file_bytes
    read = text[: limit.max_file_bytes]
    read = read[: read.rfind(b"\n") + 1] if cut else read
    expected = [n for n, piece in enumerate(read.removeprefix(codecs.BOM_UTF8).split(b"\n"), start=1) if piece.strip()]
    if cut:
        expected.append(read.count(b"\n") + 1)
    assert batch.line_no.to_pylist() == expected
    assert len(batch.raw) == batch.num_rows
    check(batch, limit)


column_types = st.sampled_from(
    [
        pa.string(), pa.large_string(), pa.binary(), pa.int64(), pa.float64(), pa.bool_(), pa.date32(),
        pa.timestamp("s"), pa.timestamp("ms", tz="UTC"), pa.timestamp("ns"), pa.timestamp("us", tz="Europe/Zurich"),
        pa.list_(pa.int64()), pa.struct([("tokens", pa.float64()), ("note", pa.string())]), pa.null(),
        pa.dictionary(pa.int32(), pa.string()),
    ]
)  # fmt: skip


@st.composite
def arrow_tables(draw) -> pa.Table:
    n = draw(st.integers(0, 6))
    names = draw(
        st.lists(
            st.sampled_from(
                ["event_id", "idempotency_key", "subscription_id", "event_type", "timestamp", "properties",
                 "signature", "extra"]
            ),
            unique=True,
            max_size=8,
        )
    )  # fmt: skip
    columns = {}
    for name in names:
        kind = draw(column_types)
        base = pa.string() if pa.types.is_dictionary(kind) else kind
        if pa.types.is_timestamp(base) or pa.types.is_date(base):
            raw = draw(
                st.lists(
                    st.none() | st.integers(-(2**31), 2**31 - 1) | st.integers(-(2**62), 2**62), min_size=n, max_size=n
                )
            )
            storage = pa.int32() if pa.types.is_date(base) else pa.int64()
            if pa.types.is_date(base):
                raw = [None if v is None else max(-(2**31), min(2**31 - 1, v)) for v in raw]
            array = pa.array(raw, storage).cast(base)
        elif pa.types.is_null(base):
            array = pa.nulls(n)
        else:
            values = {
                pa.string(): st.text(max_size=40) | st.sampled_from([SUB, "ik-1", "llm.completion", '{"tokens": 3}']),
                pa.large_string(): st.text(max_size=40),
                pa.binary(): st.binary(max_size=40),
                pa.int64(): st.integers(-(2**63), 2**63 - 1),
                pa.float64(): st.floats(),
                pa.bool_(): st.booleans(),
                pa.list_(pa.int64()): st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3),
                pa.struct([("tokens", pa.float64()), ("note", pa.string())]): st.fixed_dictionaries(
                    {"tokens": st.none() | st.floats(), "note": st.none() | st.text(max_size=5)}
                ),
            }[base]
            array = pa.array(draw(st.lists(st.none() | values, min_size=n, max_size=n)), base)
        columns[name] = array.dictionary_encode() if pa.types.is_dictionary(kind) else array
    return pa.table(columns) if columns else pa.table({"unrelated": pa.nulls(n, pa.int8())})


@EXAMPLES
@given(table=arrow_tables(), limit=limits, int96=st.booleans())
def test_parquet_reader_never_raises_and_every_row_is_one_row(table, limit, int96):
    sink = pa.BufferOutputStream()
    try:
        pq.write_table(table, sink, row_group_size=2, use_deprecated_int96_timestamps=int96)
    except pa.ArrowException:
        assume(False)  # not a file a writer produces
    batch = read_parquet("d.parquet", pa.BufferReader(sink.getvalue()), limit)

    meta = pq.ParquetFile(pa.BufferReader(sink.getvalue())).metadata
    sizes = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
    within = [total <= limit.max_file_bytes for total in accumulate(sizes)]
    kept = sum(meta.row_group(i).num_rows for i, fits in enumerate(within) if fits)
    cut = sum(sizes) > limit.max_file_bytes
    assert batch.line_no.to_pylist() == list(range(1, kept + 1 + cut))
    check(batch, limit)


def test_the_defaults_are_postgresqls_limits_and_a_day_of_horizon_is_configurable(monkeypatch):
    assert Limits() == Limits(2**31 - 1, 2**30 - 1, 2**28 - 1, timedelta(days=90))
    monkeypatch.setenv("EVENTS_STALE_AFTER_DAYS", "7")
    monkeypatch.setenv("EVENTS_MAX_FILE_BYTES", "1000")
    assert Limits.from_settings() == Limits(1000, 2**30 - 1, 2**28 - 1, timedelta(days=7))
