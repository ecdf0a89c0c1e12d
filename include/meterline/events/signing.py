"""Event signatures: HMAC-SHA256, hex, over the canonical form of the event.

The canonical form is the JSON object of the event's fields `event_id`, `idempotency_key`,
`subscription_id`, `event_type`, `timestamp` and `properties` (never `signature`), with keys
sorted at every level, compact separators (`,` and `:`), non-ASCII kept as UTF-8, and the
timestamp written as UTC with microseconds: `2025-03-01T10:15:00.123000Z`. The generator signs
and the validator checks with these two functions, so both agree by construction.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

SIGNED_FIELDS = ("event_id", "idempotency_key", "subscription_id", "event_type", "timestamp", "properties")


def canonical_timestamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(event: dict[str, Any]) -> bytes:
    """The bytes that are signed. `event["timestamp"]` is a timezone-aware datetime."""
    body = {field: event.get(field) for field in SIGNED_FIELDS}
    body["timestamp"] = canonical_timestamp(body["timestamp"])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(event: dict[str, Any], key: str) -> str:
    return hmac.new(key.encode(), canonical(event), hashlib.sha256).hexdigest()


def verify(event: dict[str, Any], signature: str | None, key: str) -> bool:
    return signature is not None and hmac.compare_digest(sign(event, key), signature.lower())
