"""The day-partition loader against the real warehouse: exact counts, exactly once, quarantine."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from meterline.events import partition_prefix
from meterline.events.load import APPLICATION_NAME, load_partition
from meterline.events.signing import sign
from meterline.landing import Zone
from meterline.synthetic.events import EVENT_SCHEMA, Noise, generate

from .conftest import Catalog

pytestmark = pytest.mark.integration

DAY = date(2025, 3, 4)
NOW = datetime(2025, 3, 20, tzinfo=UTC)
UNKNOWN_SUBSCRIPTION = "11111111-1111-4111-8111-111111111111"
TABLES = ("raw.events", "raw.events_rejected", "raw.ingested_files")


def checksums(db: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every row, per events table."""
    out = {}
    for table in TABLES:
        schema, name = table.split(".")
        out[table] = db.execute(
            sql.SQL(
                "select count(*), coalesce(md5(string_agg(md5(t::text), '' order by md5(t::text))), '') from {} t"
            ).format(sql.Identifier(schema, name))
        ).fetchone()
    return out


def counts_by(db: psycopg.Connection, query: str) -> dict:
    return dict(db.execute(query).fetchall())


def test_partition_loads_exactly_once(catalog: Catalog, db, warehouse_url):
    g = generate(catalog.landing_url, DAY, 2, events_per_day=400, files_per_day=4, now=NOW)
    day1, day2 = (g.manifest["days"][d.isoformat()] for d in (DAY, date(2025, 3, 5)))
    assert day1["late"] == 1 and day1["duplicate_within_file"] == 1 and day1["duplicate_across_files"] == 1

    first = load_partition(DAY, landing_url=catalog.landing_url, now=NOW)

    # 400 events + 1 late one; 2 re-deliveries counted once; 7 invalid kinds (no signing key).
    assert first.as_dict() == {
        "day": "2025-03-04",
        "files_read": 4,
        "files_skipped": 0,
        "rows_read": 410,
        "rows_loaded": 401,
        "duplicates": 2,
        "rejected": 7,
        "rejected_by_reason": {
            "future_timestamp": 1,
            "invalid_timestamp": 1,
            "malformed_json": 1,
            "missing_field:subscription_id": 1,
            "negative_quantity": 1,
            "unknown_event_type": 1,
            "unknown_subscription": 1,
        },
        "unreadable": [],
    }
    assert day1["lines"] == 410
    assert db.execute("select count(*), count(distinct idempotency_key) from raw.events").fetchone() == (401, 401)
    ledger = db.execute(
        "select count(*), sum(rows_read), sum(rows_loaded), sum(duplicates), sum(rejected) from raw.ingested_files"
    ).fetchone()
    assert ledger == (4, 410, 401, 2, 7)
    before = checksums(db)

    again = load_partition(DAY, landing_url=catalog.landing_url, now=NOW)
    assert (again.files_read, again.files_skipped, again.rows_loaded) == (0, 4, 0)
    assert checksums(db) == before

    # The next day re-delivers one event of the 4th: loaded once, counted as a duplicate.
    second = load_partition(date(2025, 3, 5), landing_url=catalog.landing_url, now=NOW)
    assert day2["duplicate_across_days"] == 1
    assert (second.rows_read, second.rows_loaded, second.duplicates, second.rejected) == (411, 401, 3, 7)
    assert db.execute("select count(*) from raw.events").fetchone() == (802,)
    assert g.manifest["accepted_distinct_events"] == 802
    # First seen wins: the re-delivered key keeps its row from the 4th.
    rows = db.execute("select partition_date, count(*) from raw.events group by 1 order by 1").fetchall()
    assert rows == [(date(2025, 3, 4), 401), (date(2025, 3, 5), 401)]


def _event(catalog: Catalog, n: int, **override) -> dict:
    event = {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "idempotency_key": f"ik-test-{n}",
        "subscription_id": catalog.subscription_ids[0],
        "event_type": "llm.completion",
        "timestamp": "2025-03-04T10:15:00.000Z",
        "properties": {"tokens": 100 + n, "duration_ms": 20},
    }
    event.update(override)
    return event


def _signed(event: dict, key: str) -> dict:
    ts = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    return {**event, "signature": sign({**event, "timestamp": ts}, key)}


def test_each_bad_row_is_quarantined_with_file_line_and_reason(catalog: Catalog, db, monkeypatch):
    key = "test-signing-key"
    monkeypatch.setenv("METERING_SIGNING_KEY", key)
    good = [_signed(_event(catalog, n), key) for n in range(3)]
    bad = {
        "malformed_json": '{"event_id": "broken',
        "missing_field:event_id": _signed(_event(catalog, 10, event_id=None), key),
        "invalid_uuid:subscription_id": _signed(_event(catalog, 11, subscription_id="sub-1"), key),
        "invalid_timestamp": _signed(_event(catalog, 12), key) | {"timestamp": "2025-03-04 at noon"},
        "invalid_properties": _signed(_event(catalog, 13, properties={"tokens": "many"}), key),
        "future_timestamp": _signed(_event(catalog, 14, timestamp="2025-03-20T00:06:00Z"), key),
        "unknown_subscription": _signed(_event(catalog, 15, subscription_id=UNKNOWN_SUBSCRIPTION), key),
        "unknown_event_type": _signed(_event(catalog, 16, event_type="video.render"), key),
        "negative_quantity": _signed(_event(catalog, 17, properties={"tokens": -5}), key),
        "bad_signature": _signed(_event(catalog, 18), key) | {"signature": "0" * 64},
        # PostgreSQL's text cannot hold NUL: refused, not left to fail the partition's COPY.
        "invalid_signature": _signed(_event(catalog, 19), key) | {"signature": "ab\u0000"},
    }
    lines = [json.dumps(good[0]), *(v if isinstance(v, str) else json.dumps(v) for v in bad.values()), ""]
    lines += [json.dumps(e) for e in good[1:]]  # a blank line is skipped, not rejected
    zone = Zone(catalog.landing_url)
    path = f"{partition_prefix(DAY)}/dump.jsonl.gz"
    zone.write_bytes(path, gzip.compress("\n".join(lines).encode()))
    # A Parquet file in the same partition with one missing field and one good row.
    table = pa.Table.from_pylist(
        [
            {**_signed(_event(catalog, 20, properties={"tokens": 7}), key), "properties": json.dumps({"tokens": 7})},
            {**_event(catalog, 21, event_type=None), "properties": "{}"},
            # Nor can jsonb hold NUL: the same COPY would fail on this row.
            {**_signed(_event(catalog, 22), key), "properties": '{"tokens": 1, "note": "\\u0000"}'},
        ],
        schema=EVENT_SCHEMA.set(4, pa.field("timestamp", pa.string())),
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    zone.write_bytes(f"{partition_prefix(DAY)}/dump2.parquet", sink.getvalue().to_pybytes())

    result = load_partition(DAY, landing_url=catalog.landing_url, now=datetime(2025, 3, 20, tzinfo=UTC))

    assert result.rows_loaded == 4
    rejected = db.execute(
        "select source_file, line_no, reason from raw.events_rejected order by source_file, line_no"
    ).fetchall()
    expected = [(path, i + 2, reason) for i, reason in enumerate(bad)]
    expected.append((f"{partition_prefix(DAY)}/dump2.parquet", 2, "missing_field:event_type"))
    expected.append((f"{partition_prefix(DAY)}/dump2.parquet", 3, "invalid_properties"))
    assert sorted(rejected) == sorted(expected)
    assert db.execute("select raw_record from raw.events_rejected where reason = 'malformed_json'").fetchone() == (
        '{"event_id": "broken',
    )
    loaded = db.execute(
        "select source_file, line_no, properties ->> 'tokens' from raw.events order by source_file, line_no"
    ).fetchall()
    assert loaded == [
        (path, 1, "100"),
        (path, 14, "101"),
        (path, 15, "102"),
        (f"{partition_prefix(DAY)}/dump2.parquet", 1, "7"),
    ]
    assert result.rejected_by_reason == {
        **dict.fromkeys(bad, 1),
        "missing_field:event_type": 1,
        "invalid_properties": 2,
    }


def test_changed_file_is_read_again_and_its_known_events_are_duplicates(catalog: Catalog, db):
    zone = Zone(catalog.landing_url)
    path = f"{partition_prefix(DAY)}/dump.jsonl"
    events = [_event(catalog, n) for n in range(3)]
    zone.write_bytes(path, "\n".join(json.dumps(e) for e in events).encode())
    assert load_partition(DAY, landing_url=catalog.landing_url, now=NOW).rows_loaded == 3

    zone.write_bytes(path, "\n".join(json.dumps(e) for e in [*events, _event(catalog, 3)]).encode())
    result = load_partition(DAY, landing_url=catalog.landing_url, now=NOW)

    assert (result.files_read, result.rows_read, result.rows_loaded, result.duplicates) == (1, 4, 1, 3)
    assert db.execute("select count(*) from raw.ingested_files").fetchone() == (2,)
    assert db.execute("select count(*) from raw.events").fetchone() == (4,)


def test_an_unreadable_file_is_named_and_the_others_load(catalog: Catalog, db):
    zone = Zone(catalog.landing_url)
    prefix = partition_prefix(DAY)
    zone.write_bytes(f"{prefix}/a.jsonl", json.dumps(_event(catalog, 1)).encode())
    zone.write_bytes(f"{prefix}/b.parquet", b"PAR1 truncated")

    result = load_partition(DAY, landing_url=catalog.landing_url, now=NOW)

    assert len(result.unreadable) == 1
    assert result.unreadable[0].startswith(f"{prefix}/b.parquet: ArrowInvalid: ")
    assert (result.files_read, result.rows_loaded) == (1, 1)
    assert db.execute("select source_file from raw.ingested_files").fetchall() == [(f"{prefix}/a.jsonl",)]
    assert "UNREADABLE files (not loaded, not recorded): " + f"{prefix}/b.parquet" in result.summary()

    # The re-delivered file is read on the next run; a.jsonl is skipped.
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist([{**_event(catalog, 2), "properties": "{}"}]), sink)
    zone.write_bytes(f"{prefix}/b.parquet", sink.getvalue().to_pybytes())
    again = load_partition(DAY, landing_url=catalog.landing_url, now=NOW)
    assert (again.unreadable, again.files_skipped, again.rows_loaded) == ([], 1, 1)


def test_a_killed_loader_leaves_the_tables_as_they_were(catalog: Catalog, db, warehouse_url):
    generate(catalog.landing_url, DAY, 1, events_per_day=2_000, files_per_day=2, now=NOW)
    load_partition(DAY, landing_url=catalog.landing_url, now=NOW)
    # The next day is big enough that the COPY is still running when we look.
    generate(catalog.landing_url, date(2025, 3, 5), 1, events_per_day=150_000, files_per_day=1, now=NOW)
    before = checksums(db)
    code = (
        "import sys; from datetime import date; from meterline.events.load import load_partition;"
        f"load_partition(date(2025, 3, 5), landing_url={catalog.landing_url!r})"
    )
    env = {**os.environ, "WAREHOUSE_URL": warehouse_url}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    seen = None
    # As the login user: the pipeline role may not read another session's query text.
    monitor = psycopg.connect(warehouse_url, autocommit=True)
    while time.monotonic() < deadline and proc.poll() is None:
        seen = monitor.execute(
            "select query from pg_stat_activity where application_name = %s and state = 'active'"
            " and (query ilike 'copy%%' or query ilike '%%insert into raw.events%%')",
            [APPLICATION_NAME],
        ).fetchone()
        if seen:
            break
        time.sleep(0.02)
    assert seen, "the loader never reached its COPY / insert"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(200):  # the server notices the dead client and rolls back
        if not monitor.execute(
            "select 1 from pg_stat_activity where application_name = %s", [APPLICATION_NAME]
        ).fetchone():
            break
        time.sleep(0.05)
    monitor.close()

    assert proc.returncode == -signal.SIGKILL
    assert checksums(db) == before
    retried = load_partition(date(2025, 3, 5), landing_url=catalog.landing_url, now=NOW)
    assert retried.rows_loaded == 150_000 + 300  # its events and its late ones, after the crash


def test_s3_landing_zone_loads_identically(catalog: Catalog, db, s3_bucket):
    g = generate(catalog.landing_url, DAY, 1, events_per_day=300, files_per_day=3, now=NOW)
    local = Zone(catalog.landing_url)
    remote = Zone(f"{s3_bucket}/landing")
    for f in local.list("events"):
        remote.write_bytes(f.path, local.read_bytes(f.path))
    assert len(remote.list(partition_prefix(DAY))) == 3

    from_s3 = load_partition(DAY, landing_url=f"{s3_bucket}/landing", now=NOW)
    s3_tables = db.execute(
        "select event_id, idempotency_key, subscription_id, event_type, properties, timestamp, source_file, line_no"
        " from raw.events order by idempotency_key"
    ).fetchall()
    s3_rejected = db.execute("select source_file, line_no, reason from raw.events_rejected order by 1, 2").fetchall()
    db.execute("truncate raw.events, raw.events_rejected, raw.ingested_files")
    from_local = load_partition(DAY, landing_url=catalog.landing_url, now=NOW)

    assert from_s3.as_dict() == from_local.as_dict()
    assert (from_s3.rows_loaded, from_s3.rejected) == (301, g.manifest["totals"]["rejected"]) == (301, 7)
    assert (
        s3_tables
        == db.execute(
            "select event_id, idempotency_key, subscription_id, event_type, properties, timestamp, source_file, line_no"
            " from raw.events order by idempotency_key"
        ).fetchall()
    )
    assert (
        s3_rejected
        == db.execute("select source_file, line_no, reason from raw.events_rejected order by 1, 2").fetchall()
    )


def test_generator_needs_the_catalog(landing: str):
    from meterline.synthetic.events import CatalogMissingError

    with pytest.raises(CatalogMissingError, match="run meterline generate catalog first"):
        generate(landing, DAY, 1, noise=Noise())
