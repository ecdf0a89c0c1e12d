"""raw.events' unique key is a 64-bit hash of the idempotency key (migration 115): a hash match is
a duplicate only when the texts are equal, so keys whose hashes collide are all loaded, and a
key seen before stays a duplicate whichever day brings it again.

Genuine 64-bit collisions cannot be found for a test, so the collision tests swap the database's
hash function (`raw.event_key_hash`, which the generated column and the loader's lookups both
call) for one that collides on purpose: the key's length plus the salt."""

from __future__ import annotations

import json
from datetime import date, timedelta

import psycopg
import pytest

from meterline.events import partition_prefix
from meterline.events.load import load_partition
from meterline.landing import Zone

from .conftest import Catalog
from .test_events_load import DAY, NOW, _event

pytestmark = pytest.mark.integration


def _deliver(catalog: Catalog, day: date, name: str, keys: list[str], first: int) -> None:
    events = [_event(catalog, first + n, idempotency_key=key) for n, key in enumerate(keys)]
    Zone(catalog.landing_url).write_bytes(
        f"{partition_prefix(day)}/{name}.jsonl", "\n".join(json.dumps(e) for e in events).encode()
    )


def _stored(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "select idempotency_key, event_id::text, partition_date, key_salt, key_hash from raw.events order by key_hash"
    ).fetchall()


@pytest.fixture
def colliding_hash(db: psycopg.Connection) -> None:
    db.execute(
        "create or replace function raw.event_key_hash(key text, salt bigint) returns bigint"
        " language sql immutable strict parallel safe return length(key) + salt"
    )


def test_colliding_keys_are_distinct_events_and_known_keys_stay_duplicates(catalog: Catalog, db, colliding_hash):
    day2, day3 = DAY + timedelta(days=1), DAY + timedelta(days=2)
    _deliver(catalog, DAY, "one", ["aaaa"], first=1)
    assert load_partition(DAY, landing_url=catalog.landing_url, now=NOW).rows_loaded == 1

    # "bbbb" hashes like "aaaa" (4); "ccccc" (5) like "bbbb" with salt 1; "aaaa" is known.
    _deliver(catalog, day2, "two", ["bbbb", "aaaa", "ccccc"], first=2)
    second = load_partition(day2, landing_url=catalog.landing_url, now=NOW)
    assert (second.rows_read, second.rows_loaded, second.duplicates) == (3, 2, 1)

    # Every key again, in another order, on another day: each is found along its chain.
    _deliver(catalog, day3, "three", ["ccccc", "bbbb", "aaaa", "dddd"], first=5)
    third = load_partition(day3, landing_url=catalog.landing_url, now=NOW)
    assert (third.rows_read, third.rows_loaded, third.duplicates) == (4, 1, 3)

    # First seen wins: each key keeps the row (event id, day) that first brought it.
    assert _stored(db) == [
        ("aaaa", "00000000-0000-4000-8000-000000000001", DAY, 0, 4),
        ("ccccc", "00000000-0000-4000-8000-000000000004", day2, 0, 5),
        ("bbbb", "00000000-0000-4000-8000-000000000002", day2, 2, 6),
        ("dddd", "00000000-0000-4000-8000-000000000008", day3, 3, 7),
    ]
    ledger = db.execute(
        "select partition_date, rows_read, rows_loaded, duplicates from raw.ingested_files order by 1"
    ).fetchall()
    assert ledger == [(DAY, 1, 1, 0), (day2, 3, 2, 1), (day3, 4, 1, 3)]


def test_colliding_keys_within_a_load_are_all_loaded(catalog: Catalog, db, colliding_hash):
    # Same hash within one file, and across two files of one load (the second file's lookup does
    # not see the first file's rows yet: they are still being written).
    _deliver(catalog, DAY, "a", ["xxxx", "yyyy", "xxxx"], first=1)
    _deliver(catalog, DAY, "b", ["zzzz", "yyyy"], first=4)
    result = load_partition(DAY, landing_url=catalog.landing_url, now=NOW)
    assert (result.rows_read, result.rows_loaded, result.duplicates) == (5, 3, 2)
    assert [(k, salt, h) for k, _, _, salt, h in _stored(db)] == [("xxxx", 0, 4), ("yyyy", 1, 5), ("zzzz", 2, 6)]


def test_the_database_refuses_a_second_row_with_a_known_key(catalog: Catalog, db):
    """Whatever writes raw.events, not only the loader, with the real hash."""
    insert = (
        'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, "timestamp",'
        " source_file, line_no, partition_date) values (gen_random_uuid(), %s, %s, 'llm.completion',"
        " '2025-03-04T10:15:00Z', 'by-hand', 1, '2025-03-04')"
    )
    sub = catalog.subscription_ids[0]
    db.execute(insert, ["order-1/retry", sub])
    db.execute(insert, ["order-2/retry", sub])
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(insert, ["order-1/retry", sub])
    assert db.execute(
        "select count(*), count(distinct key_hash), bool_and(key_hash = hashtextextended(idempotency_key, 0))"
        " from raw.events"
    ).fetchone() == (2, 2, True)


def test_keys_loaded_before_the_hash_get_distinct_hashes_and_stay_known(catalog: Catalog, db, colliding_hash):
    """Migration 115 on a raw.events that already holds colliding keys (here: under the colliding
    hash, the unique index dropped as if not built yet): the later loaded take the next salts,
    and the loader then finds every one of them along its chain."""
    db.execute("drop index raw.events_key_hash_uidx")
    db.execute(
        'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, "timestamp",'
        " source_file, line_no, partition_date, loaded_at)"
        " select gen_random_uuid(), k, %s, 'llm.completion', '2025-03-04T10:15:00Z', 'before', n, '2025-03-04',"
        " timestamptz '2025-03-04T12:00:00Z' + n * interval '1 second'"
        " from unnest(array['aaaa', 'bbbb', 'cccc', 'ddddd', 'ee']) with ordinality as u(k, n)",
        [catalog.subscription_ids[0]],
    )
    # bbbb and cccc leave 4; then cccc and ddddd leave 5; then ddddd leaves 6: five moves.
    assert db.execute("select raw.events_resalt_collisions()").fetchone() == (5,)
    db.execute("create unique index events_key_hash_uidx on raw.events (key_hash)")
    assert [(k, salt, h) for k, _, _, salt, h in _stored(db)] == [
        ("ee", 0, 2),
        ("aaaa", 0, 4),
        ("bbbb", 1, 5),
        ("cccc", 2, 6),
        ("ddddd", 2, 7),
    ]

    _deliver(catalog, DAY, "again", ["ddddd", "cccc", "bbbb", "aaaa", "ee", "ffff"], first=10)
    result = load_partition(DAY, landing_url=catalog.landing_url, now=NOW)
    assert (result.rows_read, result.rows_loaded, result.duplicates) == (6, 1, 5)
    assert db.execute("select key_salt, key_hash from raw.events where idempotency_key = 'ffff'").fetchone() == (4, 8)
