"""A restated month whose new delivery carries a Credit larger than a service's whole cost: the
service's total turns negative, and allocation and reconciliation still hold exactly. (Whether
the gate lets a negative service total through is the gate's business, not asserted here.)"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from meterline import transform
from meterline.cur.load import run
from meterline.landing import Zone
from meterline.synthetic import cur as gen

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARCH = date(2025, 3, 1)
CENT = Decimal("0.01")
TENANTS = ["t-0001", "t-0002", "t-0003"]
LEFT_OVER = Decimal("-123.45")  # what the credited service totals after the credit


def _with_credit(table: pa.Table, service: str, amount: Decimal) -> pa.Table:
    """The month's lines and one more: a Credit on `service` of `amount` (negative)."""
    template = table.filter(pc.equal(table["line_item_line_item_type"], "Credit")).slice(0, 1)
    for name, value in (
        ("identity_line_item_id", pa.array(["restated-credit-0001"])),
        ("line_item_product_code", pa.array([service])),
        ("line_item_unblended_cost", pa.array([float(amount)])),
        ("line_item_net_unblended_cost", pa.array([float(amount)])),
        ("line_item_line_item_description", pa.array(["Service credit for an outage"])),
    ):
        template = template.set_column(template.column_names.index(name), name, value)
    return pa.concat_tables([table, template])


def _billed_by_service(month: gen.Month) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for units, service in zip(month.truth["billed"], month.truth["service"], strict=True):
        totals[str(service)] += Decimal(int(units)) / gen.UNITS
    return totals


def test_a_credit_larger_than_a_service_allocates_and_reconciles_exactly(db, warehouse_url, tmp_path):
    zone = Zone(str(tmp_path))
    month = gen.month(MARCH, 1_500, seed=31, tenants=len(TENANTS))
    totals = _billed_by_service(month)
    # The smallest service with untagged lines on the first day, where the credit lands.
    untagged_first_day = {
        str(s)
        for s, t, d in zip(month.truth["service"], month.truth["tenant"], month.truth["usage_day"], strict=True)
        if t == "" and d == 0
    }
    service = min((s for s in totals if s in untagged_first_day and totals[s] > 0), key=lambda s: totals[s])
    credit = LEFT_OVER - totals[service]
    assert credit < -totals[service] < 0  # larger than everything the service cost

    db.execute("insert into raw.catalog_plans values ('std', 'Standard', 'USD', 0, 0, 'test')")
    for tenant in TENANTS:
        db.execute("insert into raw.catalog_tenants values (%s, %s, 'US', 'USD', null, 'test')", [tenant, tenant])
        db.execute(
            "insert into raw.catalog_subscriptions values (%s, %s, 'std', %s, null, 'test')",
            [uuid.uuid5(uuid.NAMESPACE_URL, tenant), tenant, date(2025, 1, 1)],
        )
    db.execute(
        "insert into raw.catalog_allocation_rules values (1, %s, 'even', null, %s, null, 'test')",
        [service, date(2025, 1, 1)],
    )
    models = ["run", "--select", "+recon_summary"]

    # The first delivery (half the month), then AWS's restatement of the whole month with the credit.
    gen.write_cur2(zone, gen.restatement(month, 1, 2, final=False), MARCH, datetime(2025, 3, 17, tzinfo=UTC))
    run(warehouse_url, str(tmp_path))
    transform.run(models, warehouse_url, capture_output=True)
    restated = _with_credit(gen.restatement(month, 2, 2, final=True), service, credit)
    gen.write_cur2(zone, restated, MARCH, datetime(2025, 4, 3, tzinfo=UTC))
    assert run(warehouse_url, str(tmp_path)).by_status("loaded")
    transform.run(models, warehouse_url, capture_output=True)

    # The service's raw cost is the restatement's: negative, to the last decimal.
    raw = dict(
        db.execute(
            "select line_item_product_code, sum(billed_cost) from marts.fact_cost_raw where billing_period = %s"
            " group by 1",
            [MARCH],
        ).fetchall()
    )
    expected_raw = dict(totals) | {service: LEFT_OVER}
    assert raw == expected_raw

    # Allocation conserves every service's cost to the cent, the negative one included.
    allocated = dict(
        db.execute(
            "select service, sum(allocated_cost) from marts.fact_cost_allocated where billing_period = %s group by 1",
            [MARCH],
        ).fetchall()
    )
    assert allocated == {s: c.quantize(CENT, ROUND_HALF_UP) for s, c in expected_raw.items()}
    assert allocated[service] == LEFT_OVER

    # The first day's untagged cost of the service, the credit in it, is split evenly: each tenant
    # gets a third (exactly, before rounding) and the rounded thirds add up to it to the cent.
    first_day = MARCH
    untagged = sum(
        (
            Decimal(int(u)) / gen.UNITS
            for u, s, t, d in zip(
                month.truth["billed"], month.truth["service"], month.truth["tenant"], month.truth["usage_day"],
                strict=True,
            )
            if str(s) == service and t == "" and d == 0
        ),
        credit,
    )  # fmt: skip
    split = db.execute(
        "select tenant_id, exact_cost, allocated_cost from marts.fact_cost_allocated"
        " where billing_period = %s and service = %s and usage_date = %s and allocation_method = 'even'"
        " order by tenant_id",
        [MARCH, service, first_day],
    ).fetchall()
    assert [row[0] for row in split] == TENANTS
    assert all(abs(row[1] * 3 - untagged) < Decimal("1e-15") for row in split)
    assert untagged < 0 and all(row[2] < 0 for row in split)

    # Reconciliation: per service raw and allocated agree; the negative service is ok, not failed.
    summary = {
        row[0]: row[1:]
        for row in db.execute(
            "select service, raw_cost, allocated_cost, variance, variance_pct, status from marts.recon_summary"
            " where recon_id = 'RECON-2025-03'"
        ).fetchall()
    }
    assert summary[service] == (LEFT_OVER, LEFT_OVER, Decimal(0), Decimal(0), "ok")
    assert {s: row[0] for s, row in summary.items()} == {
        s: c.quantize(CENT, ROUND_HALF_UP) for s, c in expected_raw.items()
    }
    assert {row[4] for row in summary.values()} == {"ok"}
