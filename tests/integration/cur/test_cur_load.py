"""The CUR loader against the real warehouse: each format, replacement, no-ops, drift, corrupt files."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from meterline.cur.load import CurLoadError, flat_csv_delivery, load_delivery, run
from meterline.landing import Zone
from meterline.synthetic import cur as gen

from .conftest import CUR2_ROWS, CUR2_TABLE, LEGACY_SAMPLE, legacy_sample_cost, place_legacy_sample

pytestmark = pytest.mark.integration

MARCH = date(2025, 3, 1)
APRIL = date(2025, 4, 1)


def _period_totals(db, period: date) -> tuple[int, Decimal, int]:
    rows, cost, deliveries = db.execute(
        "select count(*), coalesce(sum(line_item_unblended_cost), 0), count(distinct delivery_id)"
        " from raw.cur_line_items where billing_period = %s",
        [period],
    ).fetchone()
    return rows, cost, deliveries


def test_legacy_csv_reference_sample_loads_to_the_cent(db, warehouse_url, landing: Path):
    place_legacy_sample(landing)
    expected_rows, expected_cost = legacy_sample_cost()
    assert (expected_rows, expected_cost) == (1281, Decimal("1.68230869740"))

    summary = run(warehouse_url, str(landing))

    assert [o.status for o in summary.outcomes] == ["loaded"]  # both manifest copies: one delivery
    assert _period_totals(db, date(2023, 11, 1)) == (1281, Decimal("1.68230869740"), 1)
    by_type = dict(
        db.execute("select line_item_line_item_type, count(*) from raw.cur_line_items group by 1").fetchall()
    )
    assert by_type == {"Usage": 1269, "Tax": 12}
    ledger = db.execute(
        "select format, row_count, unblended_cost, billed_cost, is_final, array_length(columns, 1),"
        " 'product_availability' = any(extra_columns), assembly_id from raw.cur_deliveries"
    ).fetchone()
    assert ledger == (
        "legacy_csv",
        1281,
        Decimal("1.68230869740"),
        Decimal("1.68230869740"),
        False,
        94,
        True,
        "asm-0001",
    )
    # Typed columns come out typed: timestamps in UTC, exponent notation parsed exactly.
    line_16 = db.execute(
        "select line_item_usage_start_date, line_item_product_code, line_item_unblended_cost"
        " from raw.cur_line_items where source_line = 16"
    ).fetchone()
    # Line 16 of the file (header = line 1): 2023-11-04T23:00:00.000Z, AmazonS3, 1.81E-8.
    assert line_16 == (datetime(2023, 11, 4, 23, tzinfo=UTC), "AmazonS3", Decimal("0.0000000181"))
    assert round(
        db.execute("select sum(line_item_unblended_cost) from raw.cur_line_items").fetchone()[0], 2
    ) == Decimal("1.68")


def test_cur2_flattened_reference_rows_load_through_the_same_normaliser(db, warehouse_url, landing: Path):
    zone = Zone(str(landing))
    zone.write_bytes("cur/etl/aws_cost_report.csv", CUR2_ROWS.read_bytes())
    delivery = flat_csv_delivery(zone, "cur/etl/aws_cost_report.csv", date(2024, 4, 1))

    outcome = load_delivery(warehouse_url, zone, delivery)

    assert (outcome.status, outcome.rows, outcome.unblended_cost) == ("loaded", 20, Decimal(0))
    # The file's cost column is empty in every row: its sum is 0, and so is the load's.
    assert _period_totals(db, date(2024, 4, 1)) == (20, Decimal(0), 1)
    tags = db.execute("select tags from raw.cur_line_items where source_line = 18").fetchone()[0]
    assert tags == {
        "user_department": "engineering",
        "user_owner": "me",
        "user_team": "list",
        "user_unique_name": "stoneker-rds.i-093303c0db9ad",
    }
    assert db.execute("select count(*) from raw.cur_line_items where tags = '{}'").fetchone()[0] == 17
    extras = db.execute("select extras from raw.cur_line_items where source_line = 2").fetchone()[0]
    assert extras["product"] == {"product_name": "AWS Data Transfer"}
    assert extras["file"].endswith("NeeStandardCostReport-00001.snappy.parquet")
    assert extras["bill_payer_account_name"] == "Prod Eng"
    payer = db.execute("select count(bill_payer_account_id) from raw.cur_line_items").fetchone()[0]
    assert payer == 11


_ATHENA_TYPES = {"STRING": pa.string(), "DOUBLE": pa.float64(), "TIMESTAMP": pa.timestamp("ms")}


def _athena_schema() -> pa.Schema:
    fields = []
    for name, kind in re.findall(
        r"^\s+(\w+) ([A-Z<>, ]+?),?$", CUR2_TABLE.read_text().split(")\nPARTITIONED")[0], re.M
    ):
        if kind.startswith("MAP"):
            value = pa.float64() if "DOUBLE" in kind else pa.string()
            fields.append(pa.field(name, pa.map_(pa.string(), value)))
        else:
            fields.append(pa.field(name, _ATHENA_TYPES[kind]))
    return pa.schema(fields)


def test_cur2_parquet_with_the_full_athena_column_set_loads(db, warehouse_url, landing: Path):
    schema = _athena_schema()
    assert len(schema) == 125
    rows = []
    costs = ["0.0000001", "12.5", "-3.25"]
    for n, cost in enumerate(costs):
        row = {}
        for field in schema:
            if pa.types.is_map(field.type):
                row[field.name] = [("user:tenant_id", f"t-000{n + 1}")] if field.name == "resource_tags" else []
            elif pa.types.is_floating(field.type):
                row[field.name] = float(cost) if field.name == "line_item_unblended_cost" else None
            elif pa.types.is_timestamp(field.type):
                row[field.name] = datetime(2024, 3, 1 + n, 5)
            else:
                row[field.name] = {"line_item_product_code": "AmazonEC2", "line_item_line_item_type": "Usage"}.get(
                    field.name, f"v{n}"
                )
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=schema)
    gen.write_cur2(Zone(str(landing)), table, date(2024, 3, 1), datetime(2024, 4, 2, tzinfo=UTC))

    summary = run(warehouse_url, str(landing))

    assert [o.status for o in summary.outcomes] == ["loaded"]
    assert _period_totals(db, date(2024, 3, 1)) == (3, Decimal("9.2500001"), 1)
    row = db.execute(
        "select tags, line_item_usage_start_date, bill_invoice_id, extras ? 'split_line_item_split_cost',"
        " extras ? 'line_item_unblended_cost' from raw.cur_line_items where line_seq = 2"
    ).fetchone()
    assert row == ({"user_tenant_id": "t-0002"}, datetime(2024, 3, 2, 5, tzinfo=UTC), "v1", False, False)
    columns, extra = db.execute("select columns, extra_columns from raw.cur_deliveries").fetchone()
    assert len(columns) == 125
    # Every CUR 2.0 column the table types is typed; the rest (and only the rest) is in extras.
    typed = {
        r[0]
        for r in db.execute(
            "select column_name from information_schema.columns where table_schema = 'raw'"
            " and table_name = 'cur_line_items'"
        )
    }
    assert set(extra) == {c for c in columns if c not in typed and c != "resource_tags"}
    assert "product_instance_s_k_u" in extra  # product_instanceSKU, split at capitals as ARN -> a_r_n


@pytest.mark.parametrize("fmt", gen.FORMATS)
def test_each_generated_format_loads_the_generators_totals(db, warehouse_url, landing: Path, fmt: str):
    months = gen.generate(Zone(str(landing)), start=MARCH, months=1, rows=800, deliveries=1, formats=(fmt,))
    truth = months[0]

    summary = run(warehouse_url, str(landing))

    assert [o.status for o in summary.outcomes] == ["loaded"]
    assert _period_totals(db, MARCH) == (800, truth.decimal("unblended"), 1)
    billed = db.execute(
        "select sum(coalesce(line_item_net_unblended_cost, line_item_unblended_cost)) from raw.cur_line_items"
    ).fetchone()[0]
    # Only CUR 2.0 carries the net (discounted) columns; legacy reports bill unblended.
    assert billed == (truth.decimal("billed") if fmt == "cur2" else truth.decimal("unblended"))
    tagged = db.execute("select count(*) from raw.cur_line_items where tags ? 'user_tenant_id'").fetchone()[0]
    assert tagged == int((truth.truth["tenant"] != "").sum())
    final = db.execute("select is_final, bill_invoice_id is not null from raw.cur_deliveries").fetchone()
    assert final == (True, True)


def test_second_delivery_replaces_the_first_and_a_rerun_is_a_no_op(db, warehouse_url, landing: Path):
    zone = Zone(str(landing))
    march = gen.month(MARCH, 1200, seed=3)
    april = gen.month(APRIL, 600, seed=3)
    first = gen.restatement(march, 1, 2, final=False)
    gen.write_cur2(zone, first, MARCH, datetime(2025, 3, 16, tzinfo=UTC))
    gen.write_cur2(zone, gen.restatement(april, 1, 1, final=True), APRIL, datetime(2025, 5, 2, tzinfo=UTC))
    assert [o.status for o in run(warehouse_url, str(landing)).outcomes] == ["loaded", "loaded"]
    first_cost = sum((Decimal(str(v)) for v in first.column("line_item_unblended_cost").to_pylist()), Decimal(0))
    assert _period_totals(db, MARCH) == (first.num_rows, first_cost, 1)
    april_before = db.execute(
        "select delivery_id, count(*), sum(line_item_unblended_cost) from raw.cur_line_items"
        " where billing_period = %s group by 1",
        [APRIL],
    ).fetchone()

    gen.write_cur2(zone, gen.restatement(march, 2, 2, final=True), MARCH, datetime(2025, 4, 2, tzinfo=UTC))
    summary = run(warehouse_url, str(landing))

    assert [o.status for o in summary.outcomes] == ["skipped", "loaded", "skipped"]
    assert _period_totals(db, MARCH) == (1200, march.decimal("unblended"), 1)
    assert (
        db.execute(
            "select count(distinct line_seq) from raw.cur_line_items where billing_period = %s", [MARCH]
        ).fetchone()[0]
        == 1200
    )
    april_after = db.execute(
        "select delivery_id, count(*), sum(line_item_unblended_cost) from raw.cur_line_items"
        " where billing_period = %s group by 1",
        [APRIL],
    ).fetchone()
    assert april_after == april_before
    ledger = db.execute(
        "select delivery_id, billing_period, status, superseded_by, is_final"
        " from raw.cur_deliveries order by delivery_id"
    ).fetchall()
    assert ledger == [
        (1, MARCH, "loaded", 3, False),
        (2, APRIL, "loaded", None, True),
        (3, MARCH, "loaded", None, True),
    ]
    partitions = db.execute(
        "select count(*) from pg_inherits where inhparent = 'raw.cur_line_items'::regclass"
    ).fetchone()[0]
    assert partitions == 2

    audits = db.execute("select count(*) from ops.audit_log where action = 'cur.delivery_loaded'").fetchone()[0]
    again = run(warehouse_url, str(landing))
    assert [o.status for o in again.outcomes] == ["skipped", "skipped", "skipped"]
    assert db.execute("select count(*) from ops.audit_log where action = 'cur.delivery_loaded'").fetchone()[0] == audits
    assert _period_totals(db, MARCH) == (1200, march.decimal("unblended"), 1)


def test_a_month_with_new_columns_loads_and_records_the_drift(db, warehouse_url, landing: Path):
    months = gen.generate(Zone(str(landing)), start=MARCH, months=2, rows=400, deliveries=1, formats=("legacy-csv",))

    run(warehouse_url, str(landing))

    drift = db.execute(
        "select billing_period, columns_added, columns_removed, extra_columns"
        " from raw.cur_deliveries order by billing_period"
    ).fetchall()
    # Columns AWS writes that the raw table does not type (rate ids, unused RI hours) land in extras.
    untyped = ["pricing_rate_id", "reservation_unused_quantity"]
    assert drift[0] == (MARCH, [], [], untyped)
    assert drift[1] == (
        APRIL,
        ["product_instance_family", "resource_tags_user_cost_center"],
        [],
        [*untyped, "product_instance_family"],
    )
    assert _period_totals(db, APRIL) == (400, months[1].decimal("unblended"), 1)
    new_values = db.execute(
        "select count(*) filter (where extras ->> 'product_instance_family' = 'general_purpose'),"
        " count(*) filter (where tags ? 'user_cost_center') from raw.cur_line_items where billing_period = %s",
        [APRIL],
    ).fetchone()
    ec2 = int((months[1].truth["service"] == "AmazonEC2").sum())
    assert new_values[0] == ec2 and new_values[1] > 0


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_parquet_file_fails_its_delivery_and_keeps_the_previous(db, warehouse_url, landing: Path):
    zone = Zone(str(landing))
    march = gen.month(MARCH, 600, seed=5)
    gen.write_cur2(zone, gen.restatement(march, 1, 2, final=False), MARCH, datetime(2025, 3, 16, tzinfo=UTC))
    run(warehouse_url, str(landing))
    before = _period_totals(db, MARCH)
    manifest = gen.write_cur2(zone, gen.restatement(march, 2, 2, final=True), MARCH, datetime(2025, 4, 2, tzinfo=UTC))
    data_file = json.loads((landing / manifest).read_text())["dataFiles"][0].split("landing-bucket/", 1)[1]
    _truncate(landing / data_file)

    summary = run(warehouse_url, str(landing))

    assert [o.status for o in summary.outcomes] == ["skipped", "failed"]
    assert data_file in summary.failed[0] and "not a readable Parquet file" in summary.failed[0]
    assert _period_totals(db, MARCH) == before
    ledger = db.execute("select status, error from raw.cur_deliveries order by delivery_id").fetchall()
    assert [r[0] for r in ledger] == ["loaded", "failed"]
    assert data_file in ledger[1][1] and "Parquet magic bytes not found" in ledger[1][1]
    assert db.execute("select superseded_by from raw.cur_deliveries where delivery_id = 1").fetchone()[0] is None
    leftovers = db.execute("select count(*) from pg_tables where tablename like 'cur_line_items_d%'").fetchone()[0]
    assert leftovers == 1


def test_a_truncated_gzip_or_a_bad_number_names_the_file_and_line(db, warehouse_url, landing: Path):
    good = LEGACY_SAMPLE.read_bytes()
    place_legacy_sample(landing, "asm-0001")
    run(warehouse_url, str(landing))
    place_legacy_sample(landing, "asm-0002", body=good[: len(good) - 2000])

    summary = run(warehouse_url, str(landing))
    assert [o.status for o in summary.outcomes] == ["skipped", "failed"]
    assert "asm-0002/legacy-report-00001.csv.gz" in summary.failed[0]
    assert _period_totals(db, date(2023, 11, 1)) == (1281, Decimal("1.68230869740"), 1)

    rows = list(csv.reader(io.StringIO(gzip.decompress(good).decode())))
    cost = rows[0].index("lineItem/UnblendedCost")
    assert rows[9][cost] == "0.0"
    rows[9][cost] = "12,5"  # a comma decimal on line 10: one field that is not a number
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    place_legacy_sample(landing, "asm-0003", body=gzip.compress(out.getvalue().encode()))
    with pytest.raises(
        CurLoadError,
        match=r"asm-0003/legacy-report-00001\.csv\.gz: line 10: "
        r"column line_item_unblended_cost: '12,5' is not a number",
    ):
        from meterline.cur.discover import discover

        delivery = next(d for d in discover(Zone(str(landing)))[0] if d.assembly_id == "asm-0003")
        load_delivery(warehouse_url, Zone(str(landing)), delivery)
    assert _period_totals(db, date(2023, 11, 1)) == (1281, Decimal("1.68230869740"), 1)

    # A value only PostgreSQL can refuse (a date that does not exist): still the file and its line.
    start = rows[0].index("lineItem/UsageStartDate")
    rows[9][cost] = "0.0"
    rows[19][start] = "2023-11-31T00:00:00.000Z"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    place_legacy_sample(landing, "asm-0004", body=gzip.compress(out.getvalue().encode()))
    summary = run(warehouse_url, str(landing))
    failure = next(f for f in summary.failed if "asm-0004" in f)
    assert "asm-0004/legacy-report-00001.csv.gz: line 20: date/time field value out of range" in failure
    assert _period_totals(db, date(2023, 11, 1)) == (1281, Decimal("1.68230869740"), 1)


def test_deliveries_load_from_s3(db, warehouse_url, s3_bucket: str):
    zone = Zone(f"{s3_bucket}/landing")
    months = gen.generate(zone, start=MARCH, months=1, rows=300, deliveries=2, formats=("cur2", "legacy-csv"))

    summary = run(warehouse_url, f"{s3_bucket}/landing")

    # Two reports, two deliveries each: the first of each report is not current (its manifest's
    # time is older), so only the last of each loads, the later replacing the earlier.
    assert len(summary.by_status("loaded")) == 2
    assert [o.reason.split(":")[0] for o in summary.by_status("skipped")] == ["not current", "not current"]
    assert _period_totals(db, MARCH) == (300, months[0].decimal("unblended"), 1)
    assert all(f["path"].startswith("cur/") for f in db.execute("select files from raw.cur_deliveries").fetchone()[0])
