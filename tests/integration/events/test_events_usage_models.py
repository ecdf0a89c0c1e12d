"""The usage marts, built by real dbt, against the generator's ground truth (not our own SQL)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from meterline import transform
from meterline.events.load import load_partition
from meterline.synthetic.events import generate

from .conftest import Catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEEK = date(2025, 3, 3)
NOW = datetime(2025, 3, 31, tzinfo=UTC)
SELECT = ["--select", "+path:models/marts/usage", "--indirect-selection", "cautious"]
# The loads of a test follow each other within seconds: without the safety lookback, an
# incremental build re-aggregates exactly the hours of what was loaded since the last one.
EXACT = ["--vars", "{usage_lookback_minutes: 0}"]


def build_usage(conninfo: str) -> None:
    done = transform.run(["build", *SELECT, *EXACT], conninfo, check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:]


def truth_rows(*truths: pa.Table) -> dict[tuple, tuple[int, int]]:
    total: dict[tuple, list[int]] = {}
    for truth in truths:
        for r in truth.to_pylist():
            key = (r["subscription_id"], r["event_type"], r["hour"])
            acc = total.setdefault(key, [0, 0])
            acc[0] += r["event_count"]
            acc[1] += r["total_tokens"]
    return {k: (v[0], v[1]) for k, v in total.items()}


def hourly(db) -> dict[tuple, tuple[int, int]]:
    return {
        (str(s), t, h): (n, int(tok))
        for s, t, h, n, tok in db.execute(
            "select subscription_id, event_type, hour, event_count, total_tokens from marts.usage_hourly"
        )
    }


def test_usage_hourly_equals_ground_truth_and_increments_exactly(catalog: Catalog, db, warehouse_url):
    week = generate(catalog.landing_url, WEEK, 7, events_per_day=1500, files_per_day=2, now=NOW)
    for offset in range(7):
        load_partition(WEEK + timedelta(days=offset), landing_url=catalog.landing_url, now=NOW)
    db.execute(
        "insert into raw.catalog_quotas (subscription_id, event_type, limit_value, period, action, source_file)"
        " values (%s, 'api.request', 20000, 'month', 'block', 'catalog/quotas.csv')",
        [catalog.subscriptions[0][0]],  # a subscription of t-0001
    )
    build_usage(warehouse_url)

    expected = truth_rows(week.truth)
    assert sum(n for n, _ in expected.values()) == week.manifest["accepted_distinct_events"] == 7 * 1503
    assert hourly(db) == expected

    # Day 8 arrives, with late events for hours already built.
    day8 = generate(catalog.landing_url, WEEK + timedelta(days=7), 1, events_per_day=1500, files_per_day=2, now=NOW)
    late_hours = {h for h in day8.truth["hour"].to_pylist() if h < datetime(2025, 3, 10, tzinfo=UTC)}
    assert len(late_hours) == 3, late_hours
    before = {
        (str(s), t, h): u
        for s, t, h, u in db.execute("select subscription_id, event_type, hour, updated_at from marts.usage_hourly")
    }
    # As after a backfill that autovacuum has not caught up with: no BRIN range of raw.events
    # summarised. The hourly models summarise them first (pre-hook), so their reads stay bounded.
    brin = ("raw.events_timestamp_brin", "raw.events_loaded_at_brin")
    for index in brin:
        db.execute(
            "select brin_desummarize_range(%s, b)"
            " from generate_series(0, pg_relation_size('raw.events') / 8192, 128) b",
            [index],
        )
    load_partition(WEEK + timedelta(days=7), landing_url=catalog.landing_url, now=NOW)
    build_usage(warehouse_url)
    assert [db.execute("select brin_summarize_new_values(%s)", [index]).fetchone()[0] for index in brin] == [0, 0]

    expected = truth_rows(week.truth, day8.truth)
    assert hourly(db) == expected
    after = {
        (str(s), t, h): u
        for s, t, h, u in db.execute("select subscription_id, event_type, hour, updated_at from marts.usage_hourly")
    }
    rebuilt_hours = {k[2] for k, u in after.items() if before.get(k) != u}
    touched = {h for h in day8.truth["hour"].to_pylist()}
    # Exactly the hours day 8's events touched were replaced (old hours included), nothing else.
    assert rebuilt_hours == touched
    assert late_hours <= rebuilt_hours

    # A re-run with nothing new changes no figure.
    build_usage(warehouse_url)
    assert hourly(db) == expected

    # The other marts, against the same truth.
    by_type: Counter = Counter()
    tokens_by_sub: Counter = Counter()
    for (sub, event_type, _), (n, tok) in expected.items():
        by_type[event_type] += n
        tokens_by_sub[sub] += tok
    assert dict(db.execute("select event_type, sum(event_count)::int from marts.usage_daily group by 1")) == by_type
    assert dict(db.execute("select event_type, sum(event_count)::int from marts.usage_monthly group by 1")) == by_type
    metered_tokens = {
        str(s): int(q)
        for s, q in db.execute(
            "select subscription_id, sum(quantity) from marts.usage_metered_hourly"
            " where metric_code = 'llm_tokens' group by 1"
        )
    }
    assert metered_tokens == {s: t for s, t in tokens_by_sub.items() if t}
    requests = dict(
        db.execute(
            "select metric_code, sum(quantity)::int from marts.usage_metered_hourly"
            " where metric_code = 'api_requests' group by 1"
        )
    )
    assert requests == {"api_requests": by_type["api.request"]}

    # Month-to-date snapshot of tenant t-0001 (its two subscriptions) on the last day, with its quota.
    first_tenant_subs = {s[0] for s in catalog.subscriptions if s[1] == "t-0001"}
    march_requests = sum(
        n
        for (sub, t, h), (n, _) in expected.items()
        if sub in first_tenant_subs and t == "api.request" and h >= datetime(2025, 3, 1, tzinfo=UTC)
    )
    snapshot = db.execute(
        "select metric_value, cap_value, round(utilization, 6) from marts.usage_snapshot_daily"
        " where tenant_id = 't-0001' and metric_code = 'api_requests' and snapshot_date = '2025-03-10'"
    ).fetchone()
    assert snapshot == (march_requests, 20000, round(Decimal(march_requests) / 20000, 6))

    # The totals test catches a drift between usage_hourly and the accepted events.
    db.execute("update marts.usage_hourly set event_count = event_count + 1 where hour = %s", [min(late_hours)])
    done = transform.run(
        ["test", "--select", "usage_hourly"], warehouse_url, check=False, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "FAIL 1 totals_match_by_period_usage_hourly" in done.stdout, done.stdout[-3000:]
