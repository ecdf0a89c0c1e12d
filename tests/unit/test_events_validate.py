"""Event validation, signatures and the generator, without a database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from meterline.events.signing import canonical, sign, verify
from meterline.events.validate import (
    RAW_RECORD_MAX,
    Limits,
    parse_timestamps,
    quantities,
    raw_records,
    read_jsonl,
    storable_as_jsonb,
    validate,
)
from meterline.landing import Zone
from meterline.synthetic.events import generate

pytestmark = pytest.mark.unit

SUB = "6f1c2d7e-3b0a-4c55-9a1e-0d2f5b8c4e11"
NOW = datetime(2025, 3, 20, tzinfo=UTC)


def event(**override) -> dict:
    base = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "idempotency_key": "ik-1",
        "subscription_id": SUB,
        "event_type": "llm.completion",
        "timestamp": "2025-03-04T10:15:00.5Z",
        "properties": {"tokens": 12, "duration_ms": 3},
    }
    return base | override


def test_canonical_form_is_documented_json():
    ts = datetime(2025, 3, 4, 10, 15, 0, 500000, tzinfo=UTC)
    body = canonical({**event(), "timestamp": ts, "signature": "ignored", "extra": 1})
    assert body == (
        b'{"event_id":"00000000-0000-4000-8000-000000000001","event_type":"llm.completion",'
        b'"idempotency_key":"ik-1","properties":{"duration_ms":3,"tokens":12},'
        b'"subscription_id":"6f1c2d7e-3b0a-4c55-9a1e-0d2f5b8c4e11","timestamp":"2025-03-04T10:15:00.500000Z"}'
    )
    signed = sign({**event(), "timestamp": ts}, "k")
    assert len(signed) == 64
    assert verify({**event(), "timestamp": ts}, signed.upper(), "k")
    assert not verify({**event(properties={"tokens": 13, "duration_ms": 3}), "timestamp": ts}, signed, "k")
    assert not verify({**event(), "timestamp": ts}, None, "k")


def test_timestamps_parse_vectorised_and_impossible_dates_are_null():
    parsed = parse_timestamps(
        pa.array(["2025-03-04T10:15:00Z", "2025-03-04 10:15:00.25+01:00", "2025-02-30T00:00:00Z", "noon", None])
    ).to_pylist()
    assert parsed == [
        datetime(2025, 3, 4, 10, 15, tzinfo=UTC),
        datetime(2025, 3, 4, 9, 15, 0, 250000, tzinfo=UTC),
        None,
        None,
        None,
    ]


def test_quantities_fast_and_row_by_row_paths_agree():
    clean = pa.array(['{"tokens":5,"bytes":2.5}', "{}", '{"duration_ms":-1,"note":"x"}'])
    ok, values = quantities(clean)
    assert ok.to_pylist() == [True, True, True]
    assert values["tokens"].to_pylist() == [5, None, None]
    assert values["duration_ms"].to_pylist() == [None, None, -1]
    # One bad row sends the batch to the row-by-row path, which flags only that row.
    mixed = pa.array(['{"tokens":5}', '{"tokens":"many"}', "[1]", '{"bytes":true}', '{"bytes":7}'])
    ok, values = quantities(mixed)
    assert ok.to_pylist() == [True, False, False, False, True]
    assert values["tokens"].to_pylist()[0] == 5 and values["bytes"].to_pylist()[4] == 7


def test_validate_names_the_first_failing_check_per_line():
    lines = [
        json.dumps(event()),
        "not json",
        json.dumps(event(event_type=None)),
        json.dumps(event(event_id="nope")),
        json.dumps(event(timestamp="2025-03-20T00:05:01Z")),  # just past the 5-minute tolerance
        json.dumps(event(timestamp="2025-03-20T00:04:59Z")),  # within it
        json.dumps(event(subscription_id=SUB.upper())),  # known, case aside
        json.dumps(event(event_type="video.render")),
        json.dumps(event(properties={"tokens": -1})),
        json.dumps(event(properties=None)),  # absent properties: an empty object
        json.dumps(event(idempotency_key="ik\n2")),
        json.dumps(event(idempotency_key="k" * 201)),
    ]
    batch = read_jsonl("d.jsonl", "\n".join(lines).encode())
    reason, _ = validate(
        batch,
        known_subscriptions=pa.array([SUB]),
        known_event_types=pa.array(["llm.completion"]),
        now=NOW,
    )
    assert batch.line_no.to_pylist() == list(range(1, 13))
    assert reason.to_pylist() == [
        None,
        "malformed_json",
        "missing_field:event_type",
        "invalid_uuid:event_id",
        "future_timestamp",
        None,
        None,
        "unknown_event_type",
        "negative_quantity",
        None,
        "invalid_idempotency_key",
        "invalid_idempotency_key",
    ]


def test_jsonl_lines_msgspec_refuses_are_read_as_before():
    """Well-formed lines are decoded by msgspec; any line it refuses is read again by json.loads,
    so a mistyped field, NaN or invalid UTF-8 gives the same record and reason as before."""
    ok = json.dumps(event(properties={"tokens": 12, "model": "é", "nested": {"a": [1, 2]}}), ensure_ascii=False)
    lines = [
        ok.encode(),
        b"",  # blank lines are not records, but count as lines
        json.dumps(event(event_id=123)).encode(),  # mistyped: its JSON text, then an invalid uuid
        json.dumps(event(properties={"tokens": float("nan")})).encode(),  # json.loads takes NaN, the range check not
        json.dumps(event(idempotency_key="ik-é"), ensure_ascii=False).encode().replace("é".encode(), b"\xff"),
        b"   ",
        b"[1, 2]",  # JSON, not an object
        b'{"event_id": "\\ud800"}',  # a lone surrogate: no UTF-8 form
        json.dumps(event(properties=None, extra={"ignored": True})).encode(),
        b'{"properties": {"tokens": 1}, "event_id": "a", "event_id": "b"} \r',  # the last duplicate wins
    ]
    batch = read_jsonl("d.jsonl", b"\n".join(lines) + b"\n")
    assert batch.line_no.to_pylist() == [1, 3, 4, 5, 7, 8, 9, 10]
    assert batch.parse_error.to_pylist() == [None, None, None, None, "malformed_json", "malformed_json", None, None]
    assert batch.columns["event_id"].to_pylist() == [
        "00000000-0000-4000-8000-000000000001", "123", "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000001",
        None, None, "00000000-0000-4000-8000-000000000001", "b",
    ]  # fmt: skip
    assert batch.columns["idempotency_key"][3].as_py() == "ik-\ufffd"
    props = batch.columns["properties"].to_pylist()
    assert json.loads(props[0]) == {"tokens": 12, "model": "é", "nested": {"a": [1, 2]}}  # as written, not re-encoded
    assert props[2] == '{"tokens":NaN}' and props[6] == "{}" and props[7] == '{"tokens": 1}'
    assert batch.raw[0].as_py() == ok and batch.raw[3].as_py() == lines[4].decode("utf-8", errors="replace")
    reason, _ = validate(
        batch, known_subscriptions=pa.array([SUB]), known_event_types=pa.array(["llm.completion"]), now=NOW
    )
    assert reason.to_pylist() == [
        None, "invalid_uuid:event_id", "quantity_out_of_range", None, "malformed_json", "malformed_json", None,
        "missing_field:idempotency_key",
    ]  # fmt: skip


def test_what_postgresql_cannot_store_is_quarantined_not_copied():
    """jsonb refuses NUL and lone surrogates and text refuses NUL: one such row would fail the
    COPY of the whole partition, so it is refused with a reason instead."""
    lines = [
        json.dumps(event(idempotency_key="a", properties={"note": "\u0000"})),
        json.dumps(event(idempotency_key="b", properties={"\u0000": 1})),
        '{"event_id": "00000000-0000-4000-8000-000000000001", "idempotency_key": "c", "subscription_id": "'
        + SUB
        + '", "event_type": "llm.completion", "timestamp": "2025-03-04T10:15:00Z", "properties": {"s": "\\udc00"}}',
        json.dumps(event(idempotency_key="d", properties={"emoji": "\U0001f600", "path": "C:\\u0000"})),
        json.dumps(event(idempotency_key="e", signature="ab\u0000")),
        json.dumps(event(idempotency_key="f")),
    ]
    batch = read_jsonl("d.jsonl", "\n".join(lines).encode())
    reason, _ = validate(
        batch, known_subscriptions=pa.array([SUB]), known_event_types=pa.array(["llm.completion"]), now=NOW
    )
    # A lone surrogate anywhere in a line has no UTF-8 form: the line is malformed (as in the
    # event_id above); in a Parquet file's properties text it is refused like NUL.
    assert reason.to_pylist() == [
        "invalid_properties", "invalid_properties", "malformed_json", None, "invalid_signature", None
    ]  # fmt: skip
    texts = ['{"s": "\\udc00"}', '{"s": "\\ud83d\\ude00"}', '{"s": "\u0000"}', '{"s": "\\\\u0000"}', None]
    assert storable_as_jsonb(pa.array(texts, pa.string())).to_pylist() == [False, True, False, True, True]


def _catalog(url: str) -> None:
    zone = Zone(url)
    zone.write_bytes(
        "catalog/subscriptions.csv",
        f"subscription_id,tenant_id,plan_id,started_at,ended_at\n{SUB},t-0001,p,2025-01-01T00:00:00Z,\n".encode(),
    )
    zone.write_bytes(
        "catalog/metrics.csv",
        b"metric_code,event_type,aggregation,property,unit\n"
        b"llm_tokens,llm.completion,sum,tokens,tokens\napi_requests,api.request,count,,requests\n",
    )


def test_generator_is_deterministic_and_reports_its_noise(tmp_path):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    for url in (first, second):
        _catalog(url)
    g1 = generate(first, date(2025, 3, 1), 2, events_per_day=300, files_per_day=2, now=NOW)
    g2 = generate(second, date(2025, 3, 1), 2, events_per_day=300, files_per_day=2, now=NOW)

    a, b = Zone(first), Zone(second)
    assert [f.path for f in a.list("events")] == [f.path for f in b.list("events")]
    assert all(a.checksum(f.path) == b.checksum(f.path) for f in a.list("events"))
    assert g1.manifest == g2.manifest
    assert g1.manifest["totals"] == {
        "events": 600,
        "late": 2,
        "duplicate_within_file": 2,
        "duplicate_across_files": 2,
        "duplicate_across_days": 1,
        "malformed_json": 2,
        "missing_field": 2,
        "invalid_timestamp": 2,
        "unknown_event_type": 2,
        "unknown_subscription": 2,
        "negative_quantity": 2,
        "future_timestamp": 2,
        "bad_signature": 0,
        "lines": 621,
        "files": 4,
        "rejected": 14,
        "duplicates": 5,
    }
    assert g1.manifest["accepted_distinct_events"] == 602
    assert a.exists("_generator/events/20250301-20250302-truth.parquet")


def test_a_rejected_record_is_kept_cut_at_64_kib():
    """A line may be up to 1 GiB: its quarantined record keeps the head and says how long it was."""
    big = json.dumps(event(signature="s" * 100_000)).encode()
    batch = read_jsonl(
        "d.jsonl", big + b"\n" + json.dumps(event(idempotency_key="ik-2")).encode(), Limits(max_line_bytes=70_000)
    )
    reason, _ = validate(
        batch, known_subscriptions=pa.array([SUB]), known_event_types=pa.array(["llm.completion"]), now=NOW
    )
    assert reason.to_pylist() == ["line_too_long", None]
    (record,) = raw_records(batch, [0])
    note = f"... [{len(big)} bytes in all, cut at {RAW_RECORD_MAX}]"
    assert record == big[: RAW_RECORD_MAX - len(note)].decode() + note
    assert len(record) == RAW_RECORD_MAX
