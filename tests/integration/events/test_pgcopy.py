"""Binary COPY encoded from Arrow (meterline.events.pgcopy): what PostgreSQL reads back is what was sent."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import psycopg
import pyarrow as pa
import pytest

from meterline.events import pgcopy

pytestmark = pytest.mark.integration

U1 = uuid.UUID("0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b")
U2 = uuid.UUID("ffffffff-0000-4000-8000-123456789abc")


def test_every_type_round_trips_with_nulls_and_chunks(db: psycopg.Connection):
    table = pa.table(
        {
            "id": pa.array([str(U1).upper(), str(U2), str(U1)]),
            "name": pa.array(["héllo ✓", None, ""]),
            "doc": pa.array(['{"tokens": 12, "nested": [1, 2.5]}', "{}", None]),
            "at": pa.array(
                [
                    datetime(2025, 3, 15, 1, 2, 3, 456789, tzinfo=UTC),
                    datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
                    None,
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "n": pa.array([7, -3, None], pa.int32()),
            "day": pa.array([date(2025, 3, 15), date(1970, 1, 1), None], pa.date32()),
        }
    )
    db.execute("create temp table t (id uuid, name text, doc jsonb, at timestamptz, n int, day date)")
    with db.cursor().copy("copy t from stdin (format binary)") as copy:
        copy.write(pgcopy.HEADER)
        for chunk in pgcopy.rows(table, ["uuid", "text", "jsonb", "timestamptz", "int4", "date"], rows_per_chunk=2):
            copy.write(chunk)
        copy.write(pgcopy.TRAILER)

    assert db.execute("select * from t order by n nulls last").fetchall() == [
        (U2, None, {}, datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), -3, date(1970, 1, 1)),
        (U1, "héllo ✓", {"tokens": 12, "nested": [1, 2.5]}, datetime(2025, 3, 15, 1, 2, 3, 456789, tzinfo=UTC), 7,
         date(2025, 3, 15)),
        (U1, "", None, None, None, None),
    ]  # fmt: skip


def test_a_uuid_not_in_canonical_form_is_refused():
    with pytest.raises(ValueError, match="canonical"):
        list(pgcopy.rows(pa.table({"id": ["0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5g"]}), ["uuid"]))
    with pytest.raises(ValueError, match="36 bytes"):
        list(pgcopy.rows(pa.table({"id": ["0f8e2a4c"]}), ["uuid"]))
