"""Seeded hourly usage for a generated catalog's month, shaped to cross price tiers and quotas."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

# Monthly totals drawn per metric: spans that cross included units, tier bounds and quotas.
RANGES = {
    "llm_tokens": (0, 12_000_000),
    "api_requests": (0, 150_000),
    "storage_bytes": (0, 80_000_000),
    "compute_ms": (0, 60_000_000),
    "storage_peak_bytes": (0, 5_000_000_000),
}


def generate_usage(
    subscription_rows: list[dict[str, str]], period_start: datetime, *, seed: int = 11, hours_per_metric: int = 12
) -> list[tuple[str, str, datetime, Decimal]]:
    """(subscription_id, metric_code, hour, quantity) rows inside each subscription row's active time
    in the month starting at `period_start`; one subscription in five has no usage at all."""
    rng = random.Random(seed)
    period_end = (period_start + timedelta(days=32)).replace(day=1)
    rows: list[tuple[str, str, datetime, Decimal]] = []
    ids = sorted({r["subscription_id"] for r in subscription_rows})
    for n, sid in enumerate(ids):
        if n % 5 == 4:
            continue
        spans = []
        for r in subscription_rows:
            if r["subscription_id"] != sid:
                continue
            start = datetime.fromisoformat(r["started_at"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(r["ended_at"].replace("Z", "+00:00")) if r["ended_at"] else period_end
            a, b = max(start, period_start), min(end, period_end)
            if b > a:
                spans.append((a, b))
        hours = [a + timedelta(hours=h) for a, b in spans for h in range(int((b - a).total_seconds() // 3600))]
        if not hours:
            continue
        for metric, (low, high) in RANGES.items():
            total = rng.randint(low, high)
            picked = sorted(rng.sample(hours, min(hours_per_metric, len(hours))))
            if metric == "storage_peak_bytes":
                for hour in picked:
                    rows.append((sid, metric, hour, Decimal(rng.randint(0, total))))
                continue
            cuts = sorted(rng.randint(0, total) for _ in range(len(picked) - 1))
            parts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
            for hour, part in zip(picked, parts, strict=True):
                if part:
                    rows.append((sid, metric, hour.astimezone(UTC), Decimal(part)))
    return rows
