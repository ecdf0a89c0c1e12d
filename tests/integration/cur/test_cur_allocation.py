"""Allocation and reconciliation of a generated month, against an independent Decimal computation
from the generator's ground truth (not from the warehouse's rows)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

import pytest

from meterline import transform
from meterline.cur.load import run
from meterline.landing import Zone
from meterline.synthetic import cur as gen

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARCH = date(2025, 3, 1)
CENT = Decimal("0.01")
# Tenants in the catalog; the generator also tags t-0006, which the catalog does not know.
TENANTS = ["t-0001", "t-0002", "t-0003", "t-0004", "t-0005"]
# (tenant, started_at, ended_at): t-0004 leaves on the 20th, t-0005 joins on the 10th.
SUBSCRIPTIONS = {
    "t-0001": (date(2025, 1, 1), None),
    "t-0002": (date(2025, 1, 1), None),
    "t-0003": (date(2025, 2, 1), None),
    "t-0004": (date(2025, 1, 1), date(2025, 3, 20)),
    "t-0005": (date(2025, 3, 10), None),
}
# (rule_version, service, method, driver_metric, valid_from, valid_to): EC2 changes rule on the 15th.
RULES = [
    (1, "AmazonEC2", "even", None, date(2025, 1, 1), date(2025, 3, 15)),
    (2, "AmazonEC2", "usage_share", "api_requests", date(2025, 3, 15), None),
    (1, "AmazonS3", "usage_share", "api_requests", date(2025, 1, 1), None),
    (1, "AmazonRDS", "unallocated", None, date(2025, 1, 1), None),
    (1, "AmazonDynamoDB", "tag", None, date(2025, 1, 1), None),
]
NO_EVENTS_DAY = date(2025, 3, 7)


def _requests(tenant_index: int, day: date) -> int:
    """api.request events of a tenant on a day: varied, zero on some days, none at all on one."""
    return 0 if day == NO_EVENTS_DAY else (tenant_index * 7 + day.day * 3) % 5


def _active(tenant: str, day: date) -> bool:
    start, end = SUBSCRIPTIONS[tenant]
    return start <= day and (end is None or day < end)


def _seed_catalog_and_usage(db) -> None:
    subscription_ids = {t: uuid.uuid5(uuid.NAMESPACE_URL, t) for t in TENANTS}
    db.execute("insert into raw.catalog_plans values ('std', 'Standard', 'USD', 0, 0, 'test')")
    for tenant in TENANTS:
        db.execute("insert into raw.catalog_tenants values (%s, %s, 'US', 'USD', null, 'test')", [tenant, tenant])
        start, end = SUBSCRIPTIONS[tenant]
        db.execute(
            "insert into raw.catalog_subscriptions values (%s, %s, 'std', %s, %s, 'test')",
            [subscription_ids[tenant], tenant, start, end],
        )
    db.execute(
        "insert into raw.catalog_metrics values ('api_requests', 'api.request', 'count', null, 'requests', 'test')"
    )
    for rule in RULES:
        db.execute("insert into raw.catalog_allocation_rules values (%s, %s, %s, %s, %s, %s, 'test')", list(rule))
    events = []
    for index, tenant in enumerate(TENANTS, start=1):
        for offset in range(31):
            day = MARCH + timedelta(days=offset)
            if not _active(tenant, day):
                continue
            for n in range(_requests(index, day)):
                at = datetime(day.year, day.month, day.day, 3 + n, tzinfo=UTC)
                events.append((uuid.uuid4(), f"{tenant}-{day}-{n}", subscription_ids[tenant], at, day))
    with db.cursor().copy(
        "copy raw.events (event_id, idempotency_key, subscription_id, event_type, timestamp, source_file,"
        " line_no, partition_date) from stdin"
    ) as copy:
        for n, (event_id, key, sub, at, day) in enumerate(events, start=1):
            copy.write_row([event_id, key, sub, "api.request", at, "test.jsonl", n, day])


def _expected_exact(m: gen.Month) -> dict[tuple, Decimal]:
    """(usage_date, service, tenant_id, method, rule_version, reason) -> exact Decimal cost."""
    billed = m.truth["billed"]
    cost_by: dict[tuple, Decimal] = defaultdict(Decimal)
    for units, day, service, tenant in zip(
        billed, m.truth["usage_day"], m.truth["service"], m.truth["tenant"], strict=True
    ):
        cost_by[(MARCH + timedelta(days=int(day)), str(service), str(tenant) or None)] += (
            Decimal(int(units)) / gen.UNITS
        )
    expected: dict[tuple, Decimal] = defaultdict(Decimal)
    untagged: dict[tuple, Decimal] = defaultdict(Decimal)
    for (day, service, tenant), cost in cost_by.items():
        if tenant is None:
            untagged[(day, service)] += cost
        elif tenant in TENANTS:
            expected[(day, service, tenant, "tag", None, None)] += cost
        else:
            expected[(day, service, None, "quarantine", None, "unknown_tenant_tag")] += cost
    with localcontext() as ctx:
        ctx.prec = 40
        for (day, service), cost in untagged.items():
            rules = [r for r in RULES if r[1] == service and r[4] <= day and (r[5] is None or day < r[5])]
            rule = max(rules, default=None)
            if rule is None:
                expected[(day, service, None, "quarantine", None, "no_rule")] += cost
                continue
            version, _, method, _, _, _ = rule
            if method == "even":
                weights = {t: Decimal(1) for t in TENANTS if _active(t, day)}
            elif method == "usage_share":
                weights = {
                    t: Decimal(_requests(i, day))
                    for i, t in enumerate(TENANTS, start=1)
                    if _active(t, day) and _requests(i, day)
                }
            else:
                weights = {}
            if not weights:
                reason = {
                    "unallocated": "rule_unallocated",
                    "tag": "untagged_under_tag_rule",
                    "usage_share": "no_driver_usage",
                    "even": "no_active_tenant",
                }[method]
                expected[(day, service, None, "quarantine", version, reason)] += cost
                continue
            total = sum(weights.values())
            for tenant, weight in weights.items():
                expected[(day, service, tenant, method, version, None)] += cost * weight / total
    return dict(expected)


def _round_conserving(exact: dict[tuple, Decimal], raw_by_service: dict[str, Decimal]) -> dict[tuple, Decimal]:
    """The documented rounding: floor to the cent, leftover cents to the largest remainders."""
    rounded = {}
    for service, raw in raw_by_service.items():
        keys = [k for k in exact if k[1] == service]
        floors = {k: (exact[k] * 100).to_integral_value(ROUND_FLOOR) / 100 for k in keys}
        residue = int((raw.quantize(CENT, ROUND_HALF_UP) - sum(floors.values())) * 100)
        assert residue >= 0

        ordered = sorted(keys, key=lambda k, f=floors: (-(exact[k] - f[k]), k[0], k[2] is None, k[2] or "", k[3]))
        for rank, key in enumerate(ordered):
            rounded[key] = floors[key] + (CENT if rank < residue else 0)
    return rounded


def test_allocation_of_a_generated_month_matches_an_independent_computation(db, warehouse_url, tmp_path):
    month = gen.generate(Zone(str(tmp_path)), start=MARCH, months=1, rows=3000, deliveries=1, tenants=6, seed=11)[0]
    assert run(warehouse_url, str(tmp_path)).by_status("loaded")
    _seed_catalog_and_usage(db)

    transform.run(["run", "--select", "+path:models/marts/cost"], warehouse_url, capture_output=True)
    tests = transform.run(
        ["test", "--select", "path:models/staging/cur", "path:models/marts/cost"],
        warehouse_url,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]

    raw_by_service: dict[str, Decimal] = defaultdict(Decimal)
    for units, service in zip(month.truth["billed"], month.truth["service"], strict=True):
        raw_by_service[str(service)] += Decimal(int(units)) / gen.UNITS
    expected_exact = _expected_exact(month)
    expected = _round_conserving(expected_exact, raw_by_service)

    rows = db.execute(
        "select usage_date, service, tenant_id, allocation_method, rule_version, quarantine_reason,"
        " exact_cost, allocated_cost from marts.fact_cost_allocated where billing_period = %s",
        [MARCH],
    ).fetchall()
    actual_exact = {tuple(r[:6]): r[6] for r in rows}
    assert actual_exact.keys() == expected_exact.keys()
    assert max(abs(actual_exact[k] - expected_exact[k]) for k in expected_exact) < Decimal("1e-12")
    assert {tuple(r[:6]): r[7] for r in rows} == expected

    # Conservation to the cent, per service, and nothing else in recon_summary.
    summary = {
        r[0]: r[1:]
        for r in db.execute(
            "select service, raw_cost, allocated_cost, variance, status from marts.recon_summary"
            " where recon_id = 'RECON-2025-03'"
        )
    }
    assert summary == {
        s: (raw.quantize(CENT, ROUND_HALF_UP), raw.quantize(CENT, ROUND_HALF_UP), Decimal(0), "ok")
        for s, raw in raw_by_service.items()
    }

    # The rule change on the 15th applies by date.
    ec2 = dict(
        db.execute(
            "select usage_date, array_agg(distinct allocation_method || ':' || rule_version)"
            " from marts.fact_cost_allocated where service = 'AmazonEC2' and rule_version is not null"
            " and usage_date in ('2025-03-14', '2025-03-15')"
            " group by 1"
        ).fetchall()
    )
    assert ec2 == {date(2025, 3, 14): ["even:1"], date(2025, 3, 15): ["usage_share:2"]}

    # Services with no rule are quarantined, and say so in the exceptions.
    sagemaker = sum(v for k, v in expected.items() if k[1] == "AmazonSageMaker" and k[5] == "no_rule")
    assert sagemaker == raw_by_service["AmazonSageMaker"].quantize(CENT, ROUND_HALF_UP)
    exceptions = {
        (r[0], r[1]): r[2]
        for r in db.execute("select category, key, amount from marts.recon_exceptions where recon_id = 'RECON-2025-03'")
    }
    assert exceptions[("Allocation", "quarantine:AmazonSageMaker:no_rule")] == sagemaker
    assert exceptions[("Tagging", "untagged:AmazonSageMaker")] == raw_by_service["AmazonSageMaker"].quantize(
        CENT, ROUND_HALF_UP
    )
    unknown = sum(
        (
            Decimal(int(u)) / gen.UNITS
            for u, t in zip(month.truth["billed"], month.truth["tenant"], strict=True)
            if t == "t-0006"
        ),
        Decimal(0),
    )
    assert exceptions[("Tagging", "unknown_tenant:t-0006")] == unknown.quantize(CENT, ROUND_HALF_UP)
    assert ("Allocation", "quarantine:AmazonS3:no_driver_usage") in exceptions  # the day without events
    assert ("Allocation", "quarantine:AmazonRDS:rule_unallocated") in exceptions
    assert not any(category in ("Usage", "Invoice") for category, _ in exceptions)

    # Tag coverage: the share of billed cost on lines carrying the tenant tag.
    tagged = sum(
        (Decimal(int(u)) / gen.UNITS for u, t in zip(month.truth["billed"], month.truth["tenant"], strict=True) if t),
        Decimal(0),
    )
    total = sum(raw_by_service.values())
    coverage = db.execute("select tagged_cost, tag_coverage_pct from marts.rpt_cost_tag_coverage").fetchone()
    assert coverage == (tagged, (tagged / total * 100).quantize(CENT, ROUND_HALF_UP))


def test_invoice_total_mismatch_and_a_missing_delivery_are_invoice_exceptions(db, warehouse_url, tmp_path):
    month = gen.generate(Zone(str(tmp_path)), start=MARCH, months=1, rows=400, deliveries=1, seed=2)[0]
    run(warehouse_url, str(tmp_path))
    billed = month.decimal("billed").quantize(CENT, ROUND_HALF_UP)
    db.execute(
        "insert into raw.catalog_aws_invoice_totals values ('2025-03', 'EUINUS-1', %s, 'USD', 't'),"
        " ('2025-02', 'EUINUS-0', 10.00, 'USD', 't')",
        [billed + Decimal("12.34")],
    )
    transform.run(["run", "--select", "+recon_exceptions"], warehouse_url, capture_output=True)

    rows = db.execute(
        "select recon_id, key, amount from marts.recon_exceptions where category = 'Invoice' order by recon_id"
    ).fetchall()
    assert rows == [
        ("RECON-2025-02", "aws_invoice:EUINUS-0", Decimal("-10.00")),
        ("RECON-2025-03", "aws_invoice:EUINUS-1", Decimal("-12.34")),
    ]
