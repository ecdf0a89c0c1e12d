"""Event validation, signatures and the generator, without a database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from meterline.events.generate import generate
from meterline.events.signing import canonical, sign, verify
from meterline.events.validate import parse_timestamps, quantities, read_jsonl, validate
from meterline.landing import Zone

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
