"""`ops.audit_log`: one row per action taken on the warehouse or on an invoice."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def record(
    conn: psycopg.Connection, *, actor: str, action: str, resource: str, metadata: dict[str, Any] | None = None
) -> int:
    """Write one audit row in the caller's transaction, so it commits with the action it records."""
    row = conn.execute(
        "insert into ops.audit_log (actor, action, resource, metadata) values (%s, %s, %s, %s) returning audit_id",
        [actor, action, resource, Jsonb(metadata or {})],
    ).fetchone()
    return row[0]
