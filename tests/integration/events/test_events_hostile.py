"""Hostile usage-event files (issue 14): inputs the generator never writes, each loaded into the
real warehouse. For every one: the good rows of the file load, the bad ones are in
raw.events_rejected with file, line and reason, rows read = loaded + duplicates + rejected holds
for the file (raw.ingested_files), and only a file that cannot be opened at all fails, named,
after the others loaded."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, date, datetime

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meterline.events import partition_prefix
from meterline.events.load import PartitionResult, _jsonb_fits, load_partition
from meterline.events.validate import JSONB_MAX_BYTES, QUANTITY_MAX, Limits
from meterline.landing import Zone

from .conftest import Catalog

pytestmark = pytest.mark.integration

DAY = date(2025, 3, 4)
NOW = datetime(2025, 3, 20, tzinfo=UTC)
PREFIX = partition_prefix(DAY)


def event(catalog: Catalog, n: int, **override) -> dict:
    return {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "idempotency_key": f"ik-hostile-{n}",
        "subscription_id": catalog.subscription_ids[0],
        "event_type": "llm.completion",
        "timestamp": "2025-03-04T10:15:00Z",
        "properties": {"tokens": 10 + n},
    } | override


def line(catalog: Catalog, n: int, **override) -> bytes:
    return json.dumps(event(catalog, n, **override)).encode()


def parquet(rows: list[dict], schema: pa.Schema | None = None, **write_options) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink, **write_options)
    return sink.getvalue().to_pybytes()


def pq_row(catalog: Catalog, n: int, **override) -> dict:
    row = event(catalog, n, **override)
    return row | {
        "properties": json.dumps(row["properties"]) if isinstance(row["properties"], dict) else row["properties"]
    }


def land(catalog: Catalog, files: dict[str, bytes]) -> None:
    zone = Zone(catalog.landing_url)
    for name, data in files.items():
        zone.write_bytes(f"{PREFIX}/{name}", data)


def load(catalog: Catalog, files: dict[str, bytes]) -> PartitionResult:
    land(catalog, files)
    return load_partition(DAY, landing_url=catalog.landing_url, now=NOW)


def ledger(db: psycopg.Connection) -> dict[str, tuple[int, int, int, int]]:
    """Per file: rows read, loaded, duplicates, rejected, as raw.ingested_files recorded them;
    each file's identity is checked on the way."""
    rows = db.execute(
        "select source_file, rows_read, rows_loaded, duplicates, rejected from raw.ingested_files"
    ).fetchall()
    out = {}
    for path, read, loaded, duplicates, rejected in rows:
        assert read == loaded + duplicates + rejected, path
        out[path.rsplit("/", 1)[1]] = (read, loaded, duplicates, rejected)
    return out


def rejected(db: psycopg.Connection) -> list[tuple[str, int, str]]:
    rows = db.execute("select source_file, line_no, reason from raw.events_rejected order by 1, 2").fetchall()
    return [(path.rsplit("/", 1)[1], n, reason) for path, n, reason in rows]


def loaded_keys(db: psycopg.Connection) -> list[str]:
    return [k for (k,) in db.execute("select idempotency_key from raw.events order by 1")]


def test_empty_blank_only_and_zero_row_files_load_as_files_of_no_rows(catalog: Catalog, db):
    result = load(
        catalog,
        {
            "empty.jsonl": b"",
            "blank.jsonl.gz": gzip.compress(b"\n\n   \n\r\n\t\n"),
            "none.parquet": parquet([], schema=pa.schema([(k, pa.string()) for k in event(catalog, 0)])),
            "good.jsonl": line(catalog, 1) + b"\n",
        },
    )

    assert (result.files_read, result.rows_read, result.rows_loaded, result.rejected, result.unreadable) == (
        4, 1, 1, 0, [],
    )  # fmt: skip
    assert ledger(db) == {
        "empty.jsonl": (0, 0, 0, 0),
        "blank.jsonl.gz": (0, 0, 0, 0),
        "none.parquet": (0, 0, 0, 0),
        "good.jsonl": (1, 1, 0, 0),
    }
    assert loaded_keys(db) == ["ik-hostile-1"]
    assert "read = loaded + duplicates + rejected for each of the 4 files read" in result.summary()


def test_nesting_beyond_what_decoders_and_postgresql_take_is_rejected_as_nesting_too_deep(catalog: Catalog, db):
    def nested(depth: int) -> dict:
        value: object = 1
        for _ in range(depth):
            value = [value]
        return {"tokens": 5, "deep": value}

    deep_line = b'{"extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    result = load(
        catalog,
        {
            "deep.jsonl": b"\n".join(
                [
                    line(catalog, 1),
                    # msgspec and json stop at Python's recursion limit: 1,000+ levels in properties.
                    b'{"properties": {"a": ' + b"[" * 1_500 + b"]" * 1_500 + b"}, " + line(catalog, 2)[1:],
                    deep_line,
                    # Decodable, but deeper than MAX_NESTING (256).
                    line(catalog, 3, properties=nested(300)),
                    line(catalog, 4, properties=nested(200)),  # deep, within the bound: loads
                ]
            ),
            "deep.parquet": parquet([pq_row(catalog, 5, properties="[" * 5_000 + "]" * 5_000), pq_row(catalog, 6)]),
        },
    )

    assert rejected(db) == [
        ("deep.jsonl", 2, "nesting_too_deep"),
        ("deep.jsonl", 3, "nesting_too_deep"),
        ("deep.jsonl", 4, "nesting_too_deep"),
        ("deep.parquet", 1, "nesting_too_deep"),
    ]
    assert ledger(db) == {"deep.jsonl": (5, 2, 0, 3), "deep.parquet": (2, 1, 0, 1)}
    assert loaded_keys(db) == ["ik-hostile-1", "ik-hostile-4", "ik-hostile-6"]
    assert result.rejected_by_reason == {"nesting_too_deep": 4}


def test_integers_beyond_int64_in_properties_on_the_row_by_row_path(catalog: Catalog, db):
    big = 2**70
    load(
        catalog,
        {
            "big.jsonl": b"\n".join(
                [
                    line(catalog, 1, properties={"tokens": "many"}),  # sends the file down the row-by-row path
                    line(catalog, 2, properties={"tokens": 3, "request_bytes_total": big}),
                    line(catalog, 3, properties={"tokens": big}),
                    # More digits than Python's int() takes (4,300).
                    line(catalog, 4, properties={"tokens": 0}).replace(b'"tokens": 0', b'"tokens": 1' + b"0" * 5000),
                ]
            )
        },
    )

    assert rejected(db) == [
        ("big.jsonl", 1, "invalid_properties"),
        ("big.jsonl", 3, "quantity_out_of_range"),
        ("big.jsonl", 4, "quantity_out_of_range"),
    ]
    assert ledger(db) == {"big.jsonl": (4, 1, 0, 3)}
    # A large integer that is not a quantity is kept exactly (jsonb numeric).
    assert db.execute("select properties ->> 'request_bytes_total' from raw.events").fetchall() == [(str(big),)]


def test_properties_and_lines_over_their_limits_are_rejected_and_the_rest_loads(catalog: Catalog, db, monkeypatch):
    # The defaults are PostgreSQL's limits (jsonb 256 MiB, a field 1 GiB); smaller ones here.
    assert (Limits().max_properties_bytes, Limits().max_line_bytes) == (2**28 - 1, 2**30 - 1) == (
        JSONB_MAX_BYTES, 1_073_741_823,
    )  # fmt: skip
    monkeypatch.setenv("EVENTS_MAX_PROPERTIES_BYTES", "1000")
    monkeypatch.setenv("EVENTS_MAX_LINE_BYTES", "3000")
    fat = {"tokens": 1, "note": "x" * 1_200}
    result = load(
        catalog,
        {
            "fat.jsonl.gz": gzip.compress(
                b"\n".join(
                    [
                        line(catalog, 1),
                        line(catalog, 2, properties=fat),
                        line(catalog, 3, signature="s" * 4_000),
                        line(catalog, 4),
                    ]
                )
            ),
            "fat.parquet": parquet(
                [pq_row(catalog, 5), pq_row(catalog, 6, properties=fat), pq_row(catalog, 7, event_type="e" * 4_000)]
            ),
        },
    )

    assert rejected(db) == [
        ("fat.jsonl.gz", 2, "properties_too_large"),
        ("fat.jsonl.gz", 3, "line_too_long"),
        ("fat.parquet", 2, "properties_too_large"),
        ("fat.parquet", 3, "line_too_long"),
    ]
    assert ledger(db) == {"fat.jsonl.gz": (4, 2, 0, 2), "fat.parquet": (3, 1, 0, 2)}
    assert loaded_keys(db) == ["ik-hostile-1", "ik-hostile-4", "ik-hostile-5"]
    assert result.rejected_by_reason == {"line_too_long": 2, "properties_too_large": 2}


def test_jsonb_fits_asks_postgresql_and_keeps_the_transaction(warehouse_url):
    """Texts near jsonb's limit are put to PostgreSQL itself: a refusal is a False, in a
    savepoint, and the load's transaction goes on."""
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("select 1")
        fits = _jsonb_fits(conn)
        assert fits('{"a": [1, 2]}')
        assert not fits("[" * 200_000 + "]" * 200_000)  # beyond PostgreSQL's stack depth
        assert not fits('{"a": NaN}')
        assert conn.execute("select 2").fetchone() == (2,)


def test_gzip_bombs_are_bounded_and_the_rest_of_the_file_is_rejected_naming_it(catalog: Catalog, db, monkeypatch):
    # 100 MB of newlines in 100 KB: decompressed and skipped in a second or two, numbered exactly.
    newlines = 100_000_000
    bomb = gzip.compress(line(catalog, 1) + b"\n" * newlines + line(catalog, 2) + b"\n", compresslevel=9)
    assert len(bomb) < 200_000
    started = time.monotonic()
    load(catalog, {"newlines.jsonl.gz": bomb})
    assert time.monotonic() - started < 60
    assert db.execute("select line_no from raw.events order by 1").fetchall() == [(1,), (newlines + 1,)]

    # Past the per-file limit, reading stops: what was read loads, the rest is one rejected row
    # at the line where reading stopped, and the summary names the file.
    monkeypatch.setenv("EVENTS_MAX_FILE_BYTES", str(10_000_000))
    good = b"\n".join(line(catalog, n) for n in range(10, 13)) + b"\n"
    result = load(catalog, {"bomb.jsonl.gz": gzip.compress(good + b"\n" * 50_000_000 + line(catalog, 13))})
    cut = rejected(db)
    assert cut == [("bomb.jsonl.gz", 3 + 10_000_000 - len(good) + 1, "file_too_large")]
    assert db.execute("select raw_record from raw.events_rejected").fetchone()[0] == (
        f"not read: {PREFIX}/bomb.jsonl.gz decompresses to more than 10000000 bytes; lines from here on"
    )
    assert ledger(db)["bomb.jsonl.gz"] == (4, 3, 0, 1)
    assert (result.rows_loaded, result.rejected_by_reason) == (3, {"file_too_large": 1})

    # Parquet is held to the uncompressed size its row groups declare: two row groups of one
    # fit the limit, the third does not.
    rows = [pq_row(catalog, 20 + n, properties={"tokens": n, "pad": "p" * 300}) for n in range(6)]
    table = pa.Table.from_pylist(rows)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=2)
    meta = pq.ParquetFile(pa.BufferReader(sink.getvalue())).metadata
    monkeypatch.setenv("EVENTS_MAX_FILE_BYTES", str(sum(meta.row_group(i).total_byte_size for i in (0, 1))))
    load(catalog, {"groups.parquet": sink.getvalue().to_pybytes()})
    assert ledger(db)["groups.parquet"] == (5, 4, 0, 1)
    assert [r for r in rejected(db) if r[0] == "groups.parquet"] == [("groups.parquet", 5, "file_too_large")]


def test_a_byte_order_mark_does_not_cost_the_first_line(catalog: Catalog, db):
    bom = b"\xef\xbb\xbf"
    load(
        catalog,
        {
            "bom.jsonl": bom + line(catalog, 1) + b"\r\n" + line(catalog, 2) + b"\r\n",
            "bom.jsonl.gz": gzip.compress(bom + line(catalog, 3)),
        },
    )
    assert rejected(db) == []
    assert ledger(db) == {"bom.jsonl": (2, 2, 0, 0), "bom.jsonl.gz": (1, 1, 0, 0)}
    assert db.execute("select line_no from raw.events where idempotency_key = 'ik-hostile-1'").fetchone() == (1,)


def test_timestamps_older_than_the_horizon_before_the_partition_are_stale(catalog: Catalog, db, monkeypatch):
    monkeypatch.setenv("EVENTS_STALE_AFTER_DAYS", "30")
    horizon = "2025-02-02T00:00:00Z"  # 2025-03-04 less 30 days
    load(
        catalog,
        {
            "old.jsonl": b"\n".join(
                [
                    line(catalog, 1, timestamp="0001-01-01T00:00:00Z"),
                    line(catalog, 2, timestamp="1969-12-31T23:59:59Z"),
                    line(catalog, 3, timestamp="2025-02-01T23:59:59.999999Z"),
                    line(catalog, 4, timestamp=horizon),  # on the horizon: a late event, kept
                    line(catalog, 5, timestamp="2025-03-01T08:00:00+02:00"),
                ]
            ),
            "old.parquet": parquet(
                [
                    pq_row(catalog, 6) | {"timestamp": datetime(1970, 1, 1, tzinfo=UTC)},
                    pq_row(catalog, 7) | {"timestamp": datetime(2025, 3, 4, 10, tzinfo=UTC)},
                ],
                schema=pa.schema(
                    [(k, pa.string()) for k in ("event_id", "idempotency_key", "subscription_id", "event_type")]
                    + [("timestamp", pa.timestamp("s", tz="UTC")), ("properties", pa.string())]
                ),
            ),
        },
    )
    assert rejected(db) == [
        ("old.jsonl", 1, "stale_timestamp"),
        ("old.jsonl", 2, "stale_timestamp"),
        ("old.jsonl", 3, "stale_timestamp"),
        ("old.parquet", 1, "stale_timestamp"),
    ]
    assert loaded_keys(db) == ["ik-hostile-4", "ik-hostile-5", "ik-hostile-7"]
    assert db.execute(
        "select \"timestamp\"::text from raw.events_rejected where line_no = 1 and source_file like '%jsonl'"
    ).fetchone() == ("0001-01-01 00:00:00+00",)


def test_timestamps_without_a_zone_are_rejected_and_int96_is_utc(catalog: Catalog, db):
    naive = datetime(2025, 3, 4, 10, 15)
    zoned = pa.schema(
        [(k, pa.string()) for k in ("event_id", "idempotency_key", "subscription_id", "event_type", "properties")]
    )
    load(
        catalog,
        {
            "naive.parquet": parquet(
                [pq_row(catalog, 1) | {"timestamp": naive}, pq_row(catalog, 2) | {"timestamp": None}],
                schema=zoned.append(pa.field("timestamp", pa.timestamp("ms"))),
            ),
            # Legacy Spark/Impala INT96: UTC instants by convention.
            "int96.parquet": parquet(
                [pq_row(catalog, 3) | {"timestamp": naive}],
                schema=zoned.append(pa.field("timestamp", pa.timestamp("ns"))),
                use_deprecated_int96_timestamps=True,
            ),
            "zurich.parquet": parquet(
                [pq_row(catalog, 4) | {"timestamp": datetime(2025, 3, 4, 10, 15, tzinfo=UTC)}],
                schema=zoned.append(pa.field("timestamp", pa.timestamp("us", tz="Europe/Zurich"))),
            ),
            "naive.jsonl": line(catalog, 5, timestamp="2025-03-04T10:15:00") + b"\n" + line(catalog, 6),
        },
    )
    assert rejected(db) == [
        ("naive.jsonl", 1, "timestamp_without_zone"),
        ("naive.parquet", 1, "timestamp_without_zone"),
        ("naive.parquet", 2, "missing_field:timestamp"),
    ]
    assert db.execute('select idempotency_key, "timestamp" from raw.events order by 1').fetchall() == [
        ("ik-hostile-3", datetime(2025, 3, 4, 10, 15, tzinfo=UTC)),
        ("ik-hostile-4", datetime(2025, 3, 4, 10, 15, tzinfo=UTC)),
        ("ik-hostile-6", datetime(2025, 3, 4, 10, 15, tzinfo=UTC)),
    ]


def test_quantities_beyond_what_the_warehouse_prices_exactly_are_out_of_range(catalog: Catalog, db):
    values = [
        b"1e308",
        str(2**70).encode(),
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e400",
        str(QUANTITY_MAX).encode(),  # the bound itself is priced exactly: loads
        str(QUANTITY_MAX + 1).encode(),
        b"999999999999999.5",  # below the bound: loads
    ]
    lines = [
        line(catalog, n, properties={}).replace(b'"properties": {}', b'"properties": {"bytes": ' + v + b"}")
        for n, v in enumerate(values)
    ]
    # NaN where a quantity is not: jsonb refuses it, so the row is refused before the COPY is.
    lines.append(line(catalog, 9, properties={}).replace(b'"properties": {}', b'"properties": {"note": NaN}'))
    result = load(
        catalog,
        {
            "qty.jsonl": b"\n".join(lines),
            "qty.parquet": parquet([pq_row(catalog, 10, properties='{"tokens": 1e308}'), pq_row(catalog, 11)]),
        },
    )
    assert rejected(db) == [
        ("qty.jsonl", 1, "quantity_out_of_range"),
        ("qty.jsonl", 2, "quantity_out_of_range"),
        ("qty.jsonl", 3, "quantity_out_of_range"),
        ("qty.jsonl", 4, "quantity_out_of_range"),
        ("qty.jsonl", 5, "quantity_out_of_range"),
        ("qty.jsonl", 6, "quantity_out_of_range"),
        ("qty.jsonl", 8, "quantity_out_of_range"),
        ("qty.jsonl", 10, "invalid_properties"),
        ("qty.parquet", 1, "quantity_out_of_range"),
    ]
    assert db.execute(
        "select properties ->> 'bytes' from raw.events where properties ? 'bytes' order by 1"
    ).fetchall() == [
        ("1000000000000000",),
        ("999999999999999.5",),
    ]
    assert ledger(db) == {"qty.jsonl": (10, 2, 0, 8), "qty.parquet": (2, 1, 0, 1)}
    assert result.rejected_by_reason == {"invalid_properties": 1, "quantity_out_of_range": 8}


def test_only_a_file_that_cannot_be_opened_fails_after_the_others_loaded(catalog: Catalog, db):
    result = load(
        catalog,
        {
            "a.jsonl": line(catalog, 1),
            "b.jsonl.gz": b"not gzip at all",
            "c.jsonl.gz": gzip.compress(line(catalog, 2) + b"\n" + line(catalog, 3))[:-12],  # truncated
            "d.parquet": b"PAR1 but not Parquet",
        },
    )
    assert [u.split(":")[0] for u in result.unreadable] == [f"{PREFIX}/b.jsonl.gz", f"{PREFIX}/c.jsonl.gz",
                                                            f"{PREFIX}/d.parquet"]  # fmt: skip
    assert ledger(db) == {"a.jsonl": (1, 1, 0, 0)}
    assert loaded_keys(db) == ["ik-hostile-1"]
    assert f"UNREADABLE files (not loaded, not recorded): {PREFIX}/b.jsonl.gz: " in result.summary()
