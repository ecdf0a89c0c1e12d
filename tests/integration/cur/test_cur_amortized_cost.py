"""AWS's amortised and net amortised cost per line item type (macros/cur_cost.sql) against an
independent Python oracle computed from the raw columns of every line (tests/oracle/cur_cost.py),
on a generated month holding every line item type; and the region of each line, on AWS's own
legacy CUR (reference data) and on a CUR 2.0 file whose region is only in the product map."""

from __future__ import annotations

import csv
import gzip
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from oracle.cur_cost import amortized_cost, net_amortized_cost

from meterline import transform
from meterline.cur.load import run
from meterline.landing import Zone
from meterline.synthetic import cur as gen

from .conftest import LEGACY_SAMPLE, place_legacy_sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARCH = date(2025, 3, 1)
MODELS = ["run", "--select", "stg_cur__line_items", "stg_cur__deliveries", "fact_cost_raw"]
# Every line item type the issue names, and so every branch of the rule.
EVERY_TYPE = {
    "Usage",
    "DiscountedUsage",
    "RIFee",
    "Fee",
    "SavingsPlanCoveredUsage",
    "SavingsPlanNegation",
    "SavingsPlanRecurringFee",
    "SavingsPlanUpfrontFee",
    "Credit",
    "Refund",
    "Tax",
    "EdpDiscount",
    "BundledDiscount",
    "PrivateRateDiscount",
}


def _raw_lines(table: pa.Table) -> list[dict[str, str]]:
    """The delivered columns of each line as text, as a CUR file holds them (floats written in
    their shortest exact form, which is how the generator's 1e-8 USD amounts read back)."""
    lines = []
    for row in table.drop_columns(["resource_tags"]).to_pylist():
        lines.append({k: ("" if v is None else repr(v) if isinstance(v, float) else str(v)) for k, v in row.items()})
    return lines


@pytest.fixture
def loaded_month(db, warehouse_url, tmp_path):
    month = gen.month(MARCH, 1_200, seed=21, tenants=5)
    gen.write_cur2(
        Zone(str(tmp_path)), gen.restatement(month, 1, 1, final=True), MARCH, datetime(2025, 4, 2, tzinfo=UTC)
    )
    run(warehouse_url, str(tmp_path))
    transform.run(MODELS, warehouse_url, capture_output=True)
    return month


def test_amortised_and_net_amortised_cost_equal_the_oracle_on_every_line_type(db, loaded_month):
    month = loaded_month
    lines = _raw_lines(month.table)
    assert {line["line_item_line_item_type"] for line in lines} == EVERY_TYPE
    facts = {
        line_id: (line_type, amortized, net_amortized, billed)
        for line_id, line_type, amortized, net_amortized, billed in db.execute(
            "select identity_line_item_id, line_item_line_item_type, amortized_cost, net_amortized_cost, billed_cost"
            " from marts.fact_cost_raw where billing_period = %s",
            [MARCH],
        ).fetchall()
    }
    assert len(facts) == len(lines) == month.table.num_rows

    by_type: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for line in lines:
        line_type, amortized, net_amortized, _ = facts[line["identity_line_item_id"]]
        expected, expected_net = amortized_cost(line), net_amortized_cost(line)
        assert (line_type, amortized, net_amortized) == (line["line_item_line_item_type"], expected, expected_net), line
        totals = by_type[line_type]
        totals[0] += Decimal(line["line_item_unblended_cost"])
        totals[1] += amortized
        totals[2] += net_amortized
        totals[3] += 1
    print("\nline item type | lines | unblended | amortised | net amortised")
    for line_type, (unblended, amortized, net_amortized, count) in sorted(by_type.items()):
        print(f"{line_type} | {count} | {unblended} | {amortized} | {net_amortized}")

    # And the generator's own ledger, built from the commitments rather than from the columns.
    (amortized_total, net_total) = db.execute(
        "select sum(amortized_cost), sum(net_amortized_cost) from marts.fact_cost_raw"
    ).fetchone()
    assert (amortized_total, net_total) == (month.decimal("amortized"), month.decimal("net_amortized"))
    assert all(
        total[1] == Decimal(0) for t, total in by_type.items() if t in ("SavingsPlanNegation", "SavingsPlanUpfrontFee")
    )


def test_an_ri_upfront_fee_is_zero_and_each_commitment_amortises_to_its_monthly_cost(db, loaded_month):
    fees = db.execute(
        "select coalesce(reservation_reservation_a_r_n, '') <> '', count(*), sum(unblended_cost),"
        " sum(amortized_cost), sum(net_amortized_cost)"
        " from marts.fact_cost_raw f join staging.stg_cur__line_items s using (delivery_id, line_seq)"
        " where f.line_item_line_item_type = 'Fee' group by 1 order by 1"
    ).fetchall()
    (plain, count, unblended, amortized, _), (with_arn, ri_count, ri_unblended, ri_amortized, ri_net) = fees
    assert (plain, with_arn, ri_count) == (False, True, 1)
    assert ri_unblended > 0 and (ri_amortized, ri_net) == (Decimal(0), Decimal(0))  # never counted twice
    assert amortized == unblended and count > 0  # a fee that is no reservation's stays at its cost

    # A reservation's amortised cost over its lines (DiscountedUsage + RIFee) is its amortised
    # upfront fee plus its recurring fee for the month; a savings plan's is its commitment.
    per_commitment = db.execute(
        """
        select coalesce(nullif(s.reservation_reservation_a_r_n, ''), nullif(s.savings_plan_savings_plan_a_r_n, ''))
                   as arn,
               sum(f.amortized_cost),
               sum(case when s.line_item_line_item_type = 'RIFee'
                        then s.reservation_amortized_upfront_fee_for_billing_period + s.line_item_unblended_cost end),
               sum(s.savings_plan_total_commitment_to_date)
        from marts.fact_cost_raw f join staging.stg_cur__line_items s using (delivery_id, line_seq)
        where s.line_item_line_item_type not in ('Fee', 'SavingsPlanUpfrontFee')
        group by 1
        """
    ).fetchall()
    per_commitment = [row for row in per_commitment if row[0] is not None]
    assert len(per_commitment) == 4
    for arn, amortized_sum, ri_month, sp_commitment in per_commitment:
        assert amortized_sum == (ri_month if ri_month is not None else sp_commitment), arn


def test_region_falls_back_to_product_region_on_aws_legacy_cur(db, warehouse_url, landing: Path):
    place_legacy_sample(landing)
    run(warehouse_url, str(landing))
    transform.run(MODELS, warehouse_url, capture_output=True)
    with gzip.open(LEGACY_SAMPLE, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = {}
    for line, row in enumerate(rows, start=2):
        region = row["product/regionCode"] or row["product/region"]
        tax = row["lineItem/LineItemType"] == "Tax"
        expected[line] = None if tax or region in ("", "global") else region
    got = dict(
        db.execute(
            "select s.source_line, f.product_region_code from marts.fact_cost_raw f"
            " join staging.stg_cur__line_items s using (delivery_id, line_seq)"
        ).fetchall()
    )
    assert got == expected
    # 809 lines name a regionCode, 446 more only product/region; 14 are global, 12 are tax.
    assert Counter(value is not None for value in got.values()) == {True: 1255, False: 26}
    assert sum(1 for r in rows if not r["product/regionCode"] and r["product/region"] not in ("", "global")) == 446


def test_region_of_a_cur2_line_comes_from_its_product_map(db, warehouse_url, tmp_path):
    table = pa.table(
        {
            "line_item_line_item_type": ["Usage", "Usage", "Tax", "Usage"],
            "line_item_product_code": ["AmazonEC2", "AmazonCloudFront", "AmazonEC2", "AmazonS3"],
            "line_item_unblended_cost": [1.5, 0.25, 0.1, 2.0],
            "line_item_usage_start_date": pa.array([datetime(2025, 3, 2, tzinfo=UTC)] * 4, pa.timestamp("ms", "UTC")),
            "line_item_usage_end_date": pa.array([datetime(2025, 3, 3, tzinfo=UTC)] * 4, pa.timestamp("ms", "UTC")),
            "line_item_currency_code": ["USD"] * 4,
            "product_region_code": ["", "", "", "ap-south-1"],
            "product": pa.array(
                [[("region", "eu-west-1")], [("region", "global")], [("region", "eu-west-1")], [("region", "x")]],
                pa.map_(pa.string(), pa.string()),
            ),
            "resource_tags": pa.array([[]] * 4, pa.map_(pa.string(), pa.string())),
        }
    )
    gen.write_cur2(Zone(str(tmp_path)), table, MARCH, datetime(2025, 3, 20, tzinfo=UTC))
    run(warehouse_url, str(tmp_path))
    transform.run(MODELS, warehouse_url, capture_output=True)
    regions = db.execute("select product_region_code from marts.fact_cost_raw order by line_seq").fetchall()
    assert regions == [("eu-west-1",), (None,), (None,), ("ap-south-1",)]
