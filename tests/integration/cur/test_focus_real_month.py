"""The FOCUS export of a real AWS month (the legacy CUR in reference data, November 2023, 1,281
lines), validated by the FinOps Foundation's focus-validator, and our columns against the FinOps
Foundation's FOCUS 1.0 sample of what real providers write."""

from __future__ import annotations

import csv
import gzip
import re
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meterline import focus, transform, warehouse
from meterline.config import project_root
from meterline.cur.load import run as load_cur
from meterline.landing import Zone
from meterline.synthetic import cur as gen

from .conftest import place_legacy_sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOVEMBER = date(2023, 11, 1)
FOCUS_SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "focus" / "focus-1.0-sample-finops-foundation.csv.gz"
SEEDS = project_root() / "dbt_project" / "seeds"
# focus-validator 2.2.1 rules that fail on any correct data of a month AWS has not finalised
# (docs/focus.md): CapacityReservationStatus-C-004-C's condition is malformed and
# CommitmentDiscountStatus-C-004-C's inverted (with their composite parents); InvoiceId-C-005-C
# requires an invoice id that AWS only writes once the month is final (C-004-C, its twin, fails
# on a final month instead).
VALIDATOR_BUGS_OPEN_MONTH = {
    "CapacityReservationStatus-C-000-C",
    "CapacityReservationStatus-C-002-C",
    "CapacityReservationStatus-C-004-C",
    "CommitmentDiscountStatus-C-000-C",
    "CommitmentDiscountStatus-C-002-C",
    "CommitmentDiscountStatus-C-004-C",
    "InvoiceId-C-005-C",
}
# FOCUS UnitFormat, as the validator checks it (FormatUnit): plain units, <unit>-<plural time>,
# <unit>/<time>, <quantity> <unit>.
_WORDS = r"[A-Za-z][A-Za-z0-9]*(?: [A-Za-z][A-Za-z0-9]*)*"
_TIME = r"(?:Years|Months|Days|Hours|Minutes|Seconds)"
UNIT_FORMAT = re.compile(rf"^(?:{_WORDS}|{_WORDS}-{_TIME}|{_WORDS}/[A-Z][a-z]+|[0-9]+ {_WORDS})$")


@pytest.fixture(scope="module")
def real_month(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory):
    name = f"mlt_focus_real_{uuid.uuid4().hex[:8]}"
    warehouse.create_database(server_url, name, template=template_db)
    conninfo = warehouse.with_database(server_url, name)
    root = tmp_path_factory.mktemp("focus-real")
    try:
        place_legacy_sample(root / "landing")
        assert load_cur(conninfo, str(root / "landing")).by_status("loaded")
        transform.run(
            ["build", "--select", "+path:models/marts/focus", "--resource-type", "model", "--resource-type", "seed"],
            conninfo,
            capture_output=True,
            text=True,
        )
        focus.build(conninfo)  # what `meterline export focus` runs first: views and seeds again, idempotent
        # The seeds' coverage tests pass: every product code and pricing unit of AWS's month is mapped.
        tests = transform.run(
            ["test", "--select", "path:models/marts/focus", "path:tests/focus"],
            conninfo,
            capture_output=True,
            text=True,
            check=False,
        )
        assert tests.returncode == 0, tests.stdout[-3000:]
        result = focus.export(NOVEMBER, str(root / "out" / "focus-2023-11.parquet"), conninfo)
        yield conninfo, result, root
    finally:
        warehouse.drop_database(server_url, name)


def _focus_sample() -> list[dict[str, str | None]]:
    with gzip.open(FOCUS_SAMPLE, "rt", newline="") as handle:
        return [{k: (None if v == "NULL" else v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_real_month_has_regions_services_and_focus_units(real_month):
    _, result, _ = real_month
    table = pq.read_table(result.uri)
    assert table.num_rows == result.rows == 1281  # no commitments in this month: one row per line
    rows = table.select(
        ["RegionId", "RegionName", "x_ProductCode", "x_LineItemType", "ServiceName", "ServiceCategory", "PricingUnit",
         "SkuId", "SkuPriceId"]
    ).to_pylist()  # fmt: skip
    # Region on every line that has one: regionCode, else product/region; global and tax have none.
    assert Counter(r["RegionId"] is not None for r in rows) == {True: 1255, False: 26}
    assert {r["x_LineItemType"] for r in rows if r["RegionId"] is None} == {"Usage", "Tax"}
    named = {r["RegionId"]: r["RegionName"] for r in rows if r["RegionId"]}
    assert named["us-east-1"] == "US East (N. Virginia)" and named["ca-central-1"] == "Canada (Central)"

    # Every service mapped (none is "Other"), matched case-insensitively; AWS's names.
    assert "Other" not in {r["ServiceCategory"] for r in rows}
    names = {r["x_ProductCode"]: (r["ServiceName"], r["ServiceCategory"]) for r in rows}
    assert names["awskms"] == ("AWS Key Management Service", "Security")
    assert names["AmazonCloudWatch"] == ("Amazon CloudWatch", "Management and Governance")
    assert names["AWSGlue"] == ("AWS Glue", "Analytics")

    # Units in FOCUS's format (AWS's GB-Mo is GB-Months), and SkuPriceId with one SkuId each.
    units = {r["PricingUnit"] for r in rows if r["PricingUnit"]}
    assert all(UNIT_FORMAT.match(unit) for unit in units), units
    assert {"GB-Months", "Requests", "API Requests", "Object-Months"} <= units and not units & {"GB-Mo", "Obj-Month"}
    parents: dict[str, set[str]] = {}
    for r in rows:
        if r["SkuPriceId"]:
            parents.setdefault(r["SkuPriceId"], set()).add(r["SkuId"])
    assert parents and all(len(skus) == 1 for skus in parents.values())


def test_focus_validator_on_a_real_month_passes_every_mandatory_rule(real_month, focus_venv):
    _, result, root = real_month
    try:
        focus.find_python312()
    except focus.ValidatorUnavailable as why:
        pytest.skip(f"no Python 3.12: {why}")
    report = focus.validate(Path(result.uri), focus_venv, root / "reports")
    print(
        f"focus-validator (real month): {report.counts()} overall; mandatory {report.counts('M')};"
        f" conditional {report.counts('C')}; optional {report.counts('O')}"
    )
    for failed in report.failed():
        print(f"  failed {failed.rule_id}: {failed.message[:200]}")
    # Before issue 16 this month gave mandatory 184 passed / 2 failed (PricingUnit-C-000-M,
    # SkuPriceId-C-008-M), conditional 135 / 10, optional 7 / 2.
    assert report.counts("M") == {"passed": 186, "failed": 0, "skipped": 70}
    assert report.counts("C") == {"passed": 138, "failed": 7, "skipped": 135}
    assert report.counts("O") == {"passed": 9, "failed": 0, "skipped": 33}
    assert {r.rule_id for r in report.failed()} == VALIDATOR_BUGS_OPEN_MONTH


def test_our_columns_against_the_finops_foundation_sample(real_month):
    _, result, _ = real_month
    ours = pq.read_table(result.uri)
    sample = _focus_sample()
    # Every column real providers write (FOCUS 1.0) is one of ours, with a numeric type for money
    # and quantities (the sample's own "Id" is its row number, not a FOCUS column).
    sample_columns = set(sample[0]) - {"Id"}
    assert sample_columns <= set(ours.column_names), sample_columns - set(ours.column_names)
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "ListUnitPrice"):
        assert ours.schema.field(column).type == pa.decimal128(38, focus.DECIMAL_SCALE), column
        assert [Decimal(row[column]) for row in sample if row[column] is not None]  # numbers there too
    # Their ChargeCategory values are ours; AWS's units there are written as ours are.
    assert {row["ChargeCategory"] for row in sample} <= {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
    aws = [row for row in sample if row["ProviderName"] == "AWS"]
    with (SEEDS / "aws_pricing_units.csv").open(newline="") as handle:
        focus_units = {row["focus_unit"] for row in csv.DictReader(handle)}
    sample_units = {row["PricingUnit"] for row in aws if row["PricingUnit"]}
    assert {"GB", "GB-Months", "Hours", "Requests", "IOPS-Months", "API Requests", "vCPU-Hours", "LCU-Hours"} <= (
        sample_units & focus_units
    )
    # The services AWS names in the sample are the names our seed gives (AWS's own sample still
    # writes "AmazonCloudWatch", the product code, where its product name is "Amazon CloudWatch";
    # a Marketplace product is named by its seller).
    with (SEEDS / "aws_services.csv").open(newline="") as handle:
        seeded = {row["service_name"]: row["service_category"] for row in csv.DictReader(handle)}
    sample_services = {row["ServiceName"] for row in aws} - {"AmazonCloudWatch", "Red Hat OpenShift Service on AWS"}
    assert sample_services <= set(seeded), sample_services - set(seeded)
    # Savings Plan rows in the sample: covered usage with its plan's ARN, "Used", Committed pricing.
    covered = [row for row in aws if row["CommitmentDiscountId"]]
    assert len(covered) == 4
    assert {(r["CommitmentDiscountType"], r["CommitmentDiscountCategory"], r["CommitmentDiscountStatus"],
             r["PricingCategory"], r["ChargeCategory"]) for r in covered} == {
        ("Savings Plan", "Spend", "Used", "Committed", "Usage")
    }  # fmt: skip
    assert all(r["CommitmentDiscountId"].startswith("arn:aws:savingsplans::") for r in covered)


def test_a_product_code_or_unit_without_a_seed_row_fails_the_coverage_tests(warehouse_url, tmp_path):
    table = pa.table(
        {
            "line_item_line_item_type": ["Usage", "Usage", "Usage"],
            "line_item_product_code": ["AWSKMS", "AmazonHoloDeck", "AmazonS3"],
            "line_item_unblended_cost": [0.5, 2.25, 1.0],
            "line_item_usage_start_date": pa.array([datetime(2025, 3, 2, tzinfo=UTC)] * 3, pa.timestamp("ms", "UTC")),
            "line_item_usage_end_date": pa.array([datetime(2025, 3, 3, tzinfo=UTC)] * 3, pa.timestamp("ms", "UTC")),
            "line_item_currency_code": ["USD"] * 3,
            "pricing_unit": ["Keys", "Holo-Hrs", "gb-mo"],
            "resource_tags": pa.array([[]] * 3, pa.map_(pa.string(), pa.string())),
        }
    )
    gen.write_cur2(Zone(str(tmp_path)), table, date(2025, 3, 1), datetime(2025, 3, 20, tzinfo=UTC))
    load_cur(warehouse_url, str(tmp_path))
    transform.run(
        ["build", "--select", "+focus_costs", "--resource-type", "model", "--resource-type", "seed"],
        warehouse_url,
        capture_output=True,
    )  # fmt: skip
    tests = transform.run(
        ["test", "--select", "path:tests/focus"], warehouse_url, capture_output=True, text=True, check=False
    )
    # AWSKMS matches the seed's awskms and gb-mo its GB-Mo (case-insensitive); the made-up ones fail.
    assert tests.returncode == 1
    assert "FAIL 1 assert_every_aws_product_code_has_a_service" in tests.stdout
    assert "FAIL 1 assert_every_aws_pricing_unit_is_mapped" in tests.stdout
