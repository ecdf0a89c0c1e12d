"""Benchmark: load a CUR delivery of 1M line items, next to a raw COPY of the same rows.

    .venv/bin/python bench/bench_cur.py [--rows 1000000] [--repeat 3] [--write-results]
    .venv/bin/python bench/bench_cur.py --layout legacy [--files 4] [--data DIR] [--no-dbt]

In one process, on one generated month, either CUR 2.0 Parquet (2 files, 51 columns, the tag map)
or a legacy report's Athena-integrated Parquet (`--layout legacy`: ~125 snake_case columns, product
attributes, a dozen `resource_tags_*` columns, several files, no manifest, a status file saying READY):
- loader: `meterline.cur.load.load_delivery` end to end (read Parquet, normalise tags and extras,
  COPY into the delivery's table, totals, swap the partition in, ledger), timed per repeat;
- baseline, right after each load: `COPY` of the very rows the loader wrote (as PostgreSQL prints
  them, read back once, not timed) into an unindexed table of the same columns: what PostgreSQL
  alone costs. It does not depend on the loader's code, so a before/after pair (`PYTHONPATH` at an
  export of the old code, `--data` to reuse one generated month) COPYs the same bytes;
- dbt (CUR 2.0 only): `dbt build` from fact_cost_raw to recon_summary, full refresh.
Medians are reported; the ratio loader rows/s / COPY rows/s is the figure to compare (target >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas  # noqa: F401 - pyarrow imports it on first use (~4 s here, no bytecode cache): kept out of the timings
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _timing import machine, write_section
from psycopg import sql

from meterline import transform, warehouse
from meterline.cur.discover import discover
from meterline.cur.load import load_delivery, typed_columns
from meterline.landing import Zone
from meterline.synthetic import cur as gen

PERIOD = date(2025, 3, 1)
DATABASE = "meterline_bench_cur"


def _reset(conninfo: str) -> None:
    with warehouse.transaction(conninfo) as conn:
        for (name,) in conn.execute(
            "select tablename from pg_tables where schemaname = 'raw' and tablename like 'cur_line_items_d%'"
        ):
            conn.execute(sql.SQL("drop table {}").format(sql.Identifier("raw", name)))
        conn.execute("delete from raw.cur_deliveries")


def _loaded_rows(conninfo: str) -> tuple[list[str], bytes, int]:
    """The rows the loader wrote, as PostgreSQL prints them (CSV): the baseline COPYs these back.
    Independent of the loader's code, so a before/after comparison COPYs the same bytes."""
    with warehouse.connect(conninfo) as conn:
        columns = ["line_seq", "source_line", *typed_columns(conn), "tags", "extras"]
        statement = sql.SQL("copy (select {} from raw.cur_line_items order by line_seq) to stdout (format csv)").format(
            sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        chunks = []
        with conn.cursor().copy(statement) as copy:
            for chunk in copy:
                chunks.append(bytes(chunk))
        rows = conn.execute("select count(*) from raw.cur_line_items").fetchone()[0]
    return columns, b"".join(chunks), rows


def _raw_copy(conninfo: str, columns: list[str], payload: bytes) -> float:
    with warehouse.transaction(conninfo) as conn:
        conn.execute("drop table if exists raw.bench_copy")
        conn.execute("create table raw.bench_copy (like raw.cur_line_items including defaults)")
        conn.execute(
            "alter table raw.bench_copy alter column delivery_id set default 0,"
            " alter column billing_period set default '2025-03-01', alter column source_file set default 'bench'"
        )
    started = time.perf_counter()
    with warehouse.transaction(conninfo) as conn:
        statement = sql.SQL("copy raw.bench_copy ({}) from stdin (format csv)").format(
            sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with conn.cursor().copy(statement) as copy:
            view = memoryview(payload)
            for offset in range(0, len(payload), 8 << 20):
                copy.write(view[offset : offset + (8 << 20)])
    elapsed = time.perf_counter() - started
    with warehouse.transaction(conninfo) as conn:
        conn.execute("drop table raw.bench_copy")
    return elapsed


def _seed_catalog(conninfo: str) -> None:
    with warehouse.transaction(conninfo) as conn:
        conn.execute(
            "insert into raw.catalog_plans values ('std', 'Standard', 'USD', 0, 0, 'bench') on conflict do nothing"
        )
        for n in range(1, 13):
            tenant = f"t-{n:04d}"
            conn.execute(
                "insert into raw.catalog_tenants values (%s, %s, 'US', 'USD', null, 'bench') on conflict do nothing",
                [tenant, tenant],
            )
            conn.execute(
                "insert into raw.catalog_subscriptions"
                " values (gen_random_uuid(), %s, 'std', '2025-01-01', null, 'bench')",
                [tenant],
            )
        conn.execute(
            "insert into raw.catalog_allocation_rules values"
            " (1, 'AmazonEC2', 'even', null, '2025-01-01', null, 'bench'),"
            " (1, 'AmazonS3', 'even', null, '2025-01-01', null, 'bench') on conflict do nothing"
        )


# --- Legacy CUR, Athena-integrated Parquet -------------------------------------------------------
# What AWS's legacy report writes beside the columns the generator draws: the product's Price List
# attributes (one set per service, empty on lines without a product: tax, credits, discounts),
# blended and normalised columns, pricing and commitment attributes, and a dozen tag columns.
# Absent strings are empty strings and absent numbers null, as in AWS's files.
_LEGACY_REPORT = "meterline-legacy-bench"
_PRODUCT_NAMES = {
    "AmazonEC2": "Amazon Elastic Compute Cloud",
    "AmazonS3": "Amazon Simple Storage Service",
    "AmazonRDS": "Amazon Relational Database Service",
    "AWSLambda": "AWS Lambda",
    "AmazonDynamoDB": "Amazon DynamoDB",
    "AmazonCloudWatch": "AmazonCloudWatch",
    "AmazonSageMaker": "Amazon SageMaker",
    "ComputeSavingsPlans": "Savings Plans for AWS Compute usage",
    "MachineLearningSavingsPlans": "Savings Plans for Machine Learning",
}
_LOCATION = {"location": "US East (N. Virginia)", "location_type": "AWS Region", "region": "us-east-1"}
_INSTANCE = {
    "current_generation": "Yes",
    "processor_architecture": "64-bit",
    "capacitystatus": "Used",
    "marketoption": "OnDemand",
    "tenancy": "Shared",
}
_ATTRIBUTES = {
    "AmazonEC2": {
        **_LOCATION,
        **_INSTANCE,
        "product_family": "Compute Instance",
        "instance_family": "General purpose",
        "instance_type": "m5.large",
        "instance_type_family": "m5",
        "vcpu": "2",
        "memory": "8 GiB",
        "network_performance": "Up to 10 Gigabit",
        "operating_system": "Linux",
        "license_model": "No License required",
        "pre_installed_sw": "NA",
        "physical_processor": "Intel Xeon Platinum 8175",
        "processor_features": "Intel AVX; Intel AVX2; Intel AVX512; Intel Turbo",
        "normalization_size_factor": "4",
        "enhanced_networking_supported": "Yes",
        "vpcnetworkingsupport": "true",
        "storage": "EBS only",
        "operation": "RunInstances",
    },
    "AmazonS3": {
        **_LOCATION,
        "product_family": "Storage",
        "availability": "99.99%",
        "durability": "99.999999999%",
        "storage_class": "General Purpose",
        "volume_type": "Standard",
        "operation": "",
    },
    "AmazonRDS": {
        **_LOCATION,
        **_INSTANCE,
        "product_family": "Database Instance",
        "instance_family": "Memory optimized",
        "instance_type": "db.r6g.large",
        "instance_type_family": "r6g",
        "vcpu": "2",
        "memory": "16 GiB",
        "database_engine": "PostgreSQL",
        "engine_code": "14",
        "deployment_option": "Single-AZ",
        "license_model": "No license required",
        "network_performance": "Up to 10 Gigabit",
        "physical_processor": "AWS Graviton2",
        "normalization_size_factor": "4",
        "storage": "EBS Only",
        "operation": "CreateDBInstance:0014",
    },
    "AWSLambda": {
        **_LOCATION,
        "product_family": "Serverless",
        "group": "AWS-Lambda-Requests",
        "group_description": "Invocation call for a Lambda function",
        "operation": "",
    },
    "AmazonDynamoDB": {
        **_LOCATION,
        "product_family": "Provisioned IOPS",
        "group": "DDB-ReadUnits",
        "group_description": "DynamoDB Provisioned Read Units",
        "operation": "CommittedThroughput",
    },
    "AmazonCloudWatch": {
        **_LOCATION,
        "product_family": "Metric",
        "group": "Metric",
        "group_description": "Metric Monitor Usage",
        "operation": "",
    },
    "AmazonSageMaker": {
        **_LOCATION,
        **_INSTANCE,
        "product_family": "ML Instance",
        "instance_type": "ml.g5.xlarge",
        "vcpu": "4",
        "memory": "16 GiB",
        "gpu": "1",
        "operation": "RunInstance:0001",
    },
}
_PRODUCT_COLUMNS = (
    "product_name", "servicename", "servicecode", "product_family", "location", "location_type", "region",
    "operation", "usagetype", "availability", "durability", "storage_class", "volume_type",
    "instance_family", "instance_type", "instance_type_family", "vcpu", "memory",
    "current_generation", "network_performance", "operating_system", "license_model",
    "pre_installed_sw", "tenancy", "capacitystatus", "marketoption", "physical_processor",
    "processor_architecture", "processor_features", "normalization_size_factor",
    "enhanced_networking_supported", "vpcnetworkingsupport", "storage", "database_engine", "engine_code",
    "deployment_option", "group", "group_description", "gpu",
)  # fmt: skip
_TAG_COLUMNS = (
    "user_tenant_id", "user_team", "aws_created_by", "user_name", "user_env", "user_owner", "user_project",
    "user_cost_center", "user_application", "user_component", "user_managed_by", "user_stack",
)  # fmt: skip


def _pick(values: list[str], index: np.ndarray) -> pa.Array:
    return pc.take(pa.array(values, pa.string()), pa.array(index))


def _map_column(tags: pa.Array, key: str) -> pa.Array:
    """One key of a map<string, string> column as a string column ('' where absent)."""
    tags = tags.take(pa.array(np.arange(len(tags))))  # offsets from 0
    parents = np.repeat(np.arange(len(tags)), np.diff(tags.offsets.to_numpy()))
    hit = pc.equal(tags.keys, key).to_numpy(zero_copy_only=False)
    out = np.full(len(tags), "", dtype=object)
    out[parents[hit]] = np.asarray(tags.items.to_numpy(zero_copy_only=False))[hit]
    return pa.array(out, pa.string())


def legacy_table(m: gen.Month, seed: int = 11) -> pa.Table:
    """The month's final delivery as a legacy report's Athena Parquet holds it (~125 columns)."""
    base = gen.restatement(m, 1, 1, final=True)
    base = base.drop_columns([c for c in base.column_names if "_net_" in f"_{c}"])  # no discounts: no net columns
    n = base.num_rows
    rng = np.random.default_rng(seed)
    service = m.truth["service"]
    codes = list(_PRODUCT_NAMES)
    code_index = np.array([codes.index(s) if s in _PRODUCT_NAMES else len(codes) for s in service])
    has_product = np.asarray(pc.not_equal(base.column("product_sku"), "").to_numpy(zero_copy_only=False))
    resource = pc.dictionary_encode(base.column("line_item_resource_id")).combine_chunks().indices.to_numpy()
    kind = m.truth["kind"]
    cost = base.column("line_item_unblended_cost")
    rate = base.column("line_item_unblended_rate")
    amount = base.column("line_item_usage_amount").to_numpy()
    ri = np.asarray(pc.not_equal(base.column("reservation_reservation_a_r_n"), "").to_numpy(zero_copy_only=False))
    sp = np.asarray(pc.not_equal(base.column("savings_plan_savings_plan_a_r_n"), "").to_numpy(zero_copy_only=False))
    factor = np.where(np.isin(service, ["AmazonEC2", "AmazonRDS"]) & has_product, 4.0, np.nan)

    columns: dict[str, pa.Array] = {}
    for name, values in zip(base.column_names, base.columns, strict=True):
        if name == "resource_tags":
            continue
        if pa.types.is_timestamp(values.type):
            values = values.cast(pa.timestamp("ms"))  # Athena's TIMESTAMP: no zone
        columns[name] = values
        if name == "bill_invoice_id":
            columns["bill_invoicing_entity"] = pa.array(np.full(n, "Amazon Web Services, Inc."))
            columns["bill_billing_entity"] = pa.array(np.full(n, "AWS"))
        if name == "line_item_resource_id":
            zone_index = np.where(np.isin(service, ["AmazonEC2", "AmazonRDS"]) & has_product, resource % 3, 3)
            columns["line_item_availability_zone"] = _pick(["us-east-1a", "us-east-1b", "us-east-1c", ""], zone_index)
        if name == "line_item_usage_amount":
            columns["line_item_normalization_factor"] = pa.array(factor, pa.float64(), from_pandas=True)
            columns["line_item_normalized_usage_amount"] = pa.array(amount * factor, pa.float64(), from_pandas=True)
        if name == "line_item_unblended_cost":
            columns["line_item_blended_rate"] = rate
            columns["line_item_blended_cost"] = cost
        if name == "line_item_line_item_description":
            columns["line_item_tax_type"] = pa.array(np.where(kind == "Tax", "Sales Tax", ""))
            columns["line_item_legal_entity"] = pa.array(np.full(n, "Amazon Web Services, Inc."))
    for attribute in _PRODUCT_COLUMNS:
        values = [_ATTRIBUTES.get(code, {}).get(attribute, "") for code in codes] + [""]
        if attribute in ("product_name", "servicename"):
            values = [*_PRODUCT_NAMES.values(), ""]
            index = code_index
        else:
            index = np.where(has_product, code_index, len(codes))
        if attribute == "servicecode":
            values = [*codes, ""]
        if attribute == "usagetype":
            columns["product_usagetype"] = base.column("line_item_usage_type")
            continue
        columns[f"product_{attribute}"] = _pick(values, index)
    sku = base.column("product_sku")
    usage = np.isin(kind, ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"])
    columns["pricing_rate_code"] = pc.if_else(
        pa.array(usage), pc.binary_join_element_wise(sku, "JRTCKXETXF.6YS6EN2CT7", "."), ""
    )
    columns["pricing_currency"] = pa.array(np.where(usage, "USD", ""))
    committed = ri | sp
    columns["pricing_lease_contract_length"] = pa.array(np.where(committed, "1yr", ""))
    columns["pricing_offering_class"] = pa.array(np.where(ri, "standard", ""))
    columns["pricing_purchase_option"] = pa.array(np.where(committed, "Partial Upfront", ""))
    columns["reservation_start_time"] = pa.array(np.where(ri, f"{PERIOD.year - 1}-06-01T00:00:00.000Z", ""))
    columns["reservation_end_time"] = pa.array(np.where(ri, f"{PERIOD.year}-06-01T00:00:00.000Z", ""))
    columns["reservation_modification_status"] = pa.array(np.where(ri, "Original", ""))
    for name, value in (
        ("number_of_reservations", "4"),
        ("units_per_reservation", "1"),
        ("normalized_units_per_reservation", "4"),
        ("total_reserved_units", "744"),
        ("total_reserved_normalized_units", "2976"),
    ):
        columns[f"reservation_{name}"] = pa.array(np.where(ri, value, ""))
    columns["reservation_subscription_id"] = pa.array(np.where(ri, "4872981152", ""))
    columns["reservation_unused_normalized_unit_quantity"] = pa.array(
        np.where(kind == "RIFee", amount * 4, np.nan), pa.float64(), from_pandas=True
    )
    columns["reservation_upfront_value"] = pa.array(np.where(ri, 1234.56, np.nan), pa.float64(), from_pandas=True)
    columns["savings_plan_start_time"] = pa.array(np.where(sp, f"{PERIOD.year - 1}-09-01T00:00:00.000Z", ""))
    columns["savings_plan_end_time"] = pa.array(np.where(sp, f"{PERIOD.year}-09-01T00:00:00.000Z", ""))
    columns["savings_plan_offering_type"] = pa.array(np.where(sp, "ComputeSavingsPlans", ""))
    columns["savings_plan_payment_option"] = pa.array(np.where(sp, "Partial Upfront", ""))
    columns["savings_plan_purchase_term"] = pa.array(np.where(sp, "1yr", ""))
    columns["savings_plan_region"] = pa.array(np.full(n, ""))
    columns["savings_plan_instance_type_family"] = pa.array(np.full(n, ""))

    # Tags: the generator's tenant and team, and ten more the way teams tag: per resource, on the
    # tagged lines only, each key on a different share of resources.
    tags = base.column("resource_tags").combine_chunks()
    tagged = np.asarray(pc.not_equal(_map_column(tags, "user_tenant_id"), "").to_numpy(zero_copy_only=False))
    owners = [f"{name}@example.com" for name in ("ana", "bo", "chen", "dara", "eli", "fay", "gus", "hana", "ivo")]
    draws = {
        "aws_created_by": (0.3, [f"IAMUser:AIDA{k:016X}:deploy-{k}" for k in range(6)]),
        "user_name": (0.9, None),
        "user_env": (0.8, ["prod", "staging", "dev"]),
        "user_owner": (0.6, owners),
        "user_project": (0.5, ["atlas", "borealis", "cirrus", "delta", "ember"]),
        "user_cost_center": (0.4, [f"CC-{k:04d}" for k in (1010, 2020, 3030, 4040)]),
        "user_application": (0.5, ["billing-api", "ingest", "search", "web", "reports", "ml-serving"]),
        "user_component": (0.3, ["db", "cache", "worker", "frontend"]),
        "user_managed_by": (0.7, ["terraform", "cloudformation", "cdk"]),
        "user_stack": (0.2, ["blue", "green"]),
    }
    resource_draw = rng.random((len(draws), int(resource.max()) + 1))
    names = pc.binary_join_element_wise(
        pa.array(np.char.lower(service.astype(str))), pa.array(np.char.mod("%04d", resource)), "-"
    )
    for key in _TAG_COLUMNS:
        if key in ("user_tenant_id", "user_team"):
            columns[f"resource_tags_{key}"] = _map_column(tags, key)
            continue
        share, values = draws[key]
        present = tagged & (resource_draw[list(draws).index(key)][resource] < share)
        chosen = names if values is None else _pick(values, resource % len(values))
        columns[f"resource_tags_{key}"] = pc.if_else(pa.array(present), chosen, "")
    return pa.table(columns)


def write_legacy(zone: Zone, table: pa.Table, files: int) -> list[str]:
    """The Athena layout of a legacy report: `<report>/<report>/year=YYYY/month=M/<report>-0000n.snappy.parquet`
    (overwritten in place by each delivery, no manifest) and the report's status file saying READY."""
    folder = f"cur/athena/{_LEGACY_REPORT}/{_LEGACY_REPORT}/year={PERIOD.year}/month={PERIOD.month}"
    per_file = -(-table.num_rows // files)
    written = []
    for k in range(files):
        rel = f"{folder}/{_LEGACY_REPORT}-{k + 1:05d}.snappy.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(table.slice(k * per_file, per_file), sink, compression="snappy")
        zone.write_bytes(rel, sink.getvalue().to_pybytes())
        written.append(rel)
    gen.write_report_status(zone, f"cur/athena/{_LEGACY_REPORT}", "READY")
    return written


def _generate(zone: Zone, args: argparse.Namespace) -> gen.Month:
    month = gen.month(PERIOD, args.rows)
    if args.layout == "legacy":
        table = legacy_table(month)
        assert table.num_rows == args.rows
        write_legacy(zone, table, args.files)
    else:
        gen.write_cur2(zone, gen.restatement(month, 1, 1, final=True), PERIOD, datetime(2025, 4, 2, tzinfo=UTC))
    return month


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--layout",
        choices=("cur2", "legacy"),
        default="cur2",
        help="cur2: CUR 2.0 Parquet (51 columns, tag map); legacy: a legacy report's Athena Parquet (~125 columns)",
    )
    parser.add_argument("--files", type=int, default=4, help="legacy: data files per delivery")
    parser.add_argument(
        "--data", help="keep the generated landing zone in this folder and reuse it when it exists (before/after runs)"
    )
    parser.add_argument("--no-dbt", action="store_true", help="skip the dbt build")
    parser.add_argument(
        "--write-results", action="store_true", help="replace this benchmark's section of bench/RESULTS.md"
    )
    args = parser.parse_args(argv)

    server = warehouse.url()
    warehouse.drop_database(server, DATABASE)
    conninfo = warehouse.with_database(server, DATABASE)
    warehouse.bootstrap(conninfo)
    builds: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cur-") as scratch:
            folder = Path(args.data or scratch)
            reuse = args.data and (folder / "cur").exists()
            zone = Zone(str(folder))
            started = time.perf_counter()
            truth = folder / "truth.json"  # the generated month's total, for a reused zone
            if reuse and truth.exists():
                expected = Decimal(json.loads(truth.read_text())["unblended"])
            else:
                month = gen.month(PERIOD, args.rows) if reuse else _generate(zone, args)
                expected = month.decimal("unblended")
                if args.data:
                    truth.write_text(json.dumps({"rows": args.rows, "unblended": str(expected)}))
            generate_s = time.perf_counter() - started
            delivery = discover(zone)[0][0]
            size = sum(Path(folder, f).stat().st_size for f in delivery.files)
            width = len(pq.ParquetFile(folder / delivery.files[0]).schema_arrow)

            # Each load is followed by the raw COPY of the same rows: a floor measured at the same load.
            loads, copies, payload = [], [], None
            for _ in range(args.repeat):
                _reset(conninfo)
                started = time.perf_counter()
                outcome = load_delivery(conninfo, zone, delivery)
                loads.append(time.perf_counter() - started)
                assert outcome.status == "loaded", outcome
                assert outcome.rows == args.rows and outcome.unblended_cost == expected, outcome
                if payload is None:
                    columns, payload, rows = _loaded_rows(conninfo)
                    assert rows == args.rows
                copies.append(_raw_copy(conninfo, columns, payload))

        if args.layout == "cur2" and not args.no_dbt:
            _seed_catalog(conninfo)
            transform.run(
                ["run", "--select", "+recon_summary", "--exclude", "fact_cost_raw+"], conninfo, capture_output=True
            )
            for _ in range(max(1, args.repeat - 1)):
                started = time.perf_counter()
                transform.run(
                    ["build", "--full-refresh", "--select", "fact_cost_raw+,+recon_summary"],
                    conninfo,
                    capture_output=True,
                )
                builds.append(time.perf_counter() - started)
    finally:
        warehouse.drop_database(server, DATABASE)

    load_s, copy_s = statistics.median(loads), statistics.median(copies)
    load_rate, copy_rate = args.rows / load_s, args.rows / copy_s
    ratios = [c / lo for lo, c in zip(loads, copies, strict=True)]

    def runs(values: list[float], digits: int = 2) -> str:
        return ", ".join(f"{x:.{digits}f}" for x in values)

    kind = "CUR 2.0 Parquet" if args.layout == "cur2" else "legacy CUR, Athena Parquet"
    lines = [
        f"{kind}, {args.rows:,} line items, {width} columns, {len(delivery.files)} files, {size / 1e6:.1f} MB"
        + ("" if reuse else f" (generated in {generate_s:.1f} s)"),
        f"loader (read + normalise + COPY + swap): median {load_s:.2f} s = {load_rate:,.0f} rows/s"
        f"  (runs: {runs(loads)})",
        f"raw COPY of the same rows (as PostgreSQL prints them): median {copy_s:.2f} s = {copy_rate:,.0f} rows/s"
        f"  (runs: {runs(copies)})",
        f"ratio loader / raw COPY: {load_rate / copy_rate:.2f}x of medians, per run {runs(ratios)} (target >= 0.5x)",
    ]
    if builds:
        lines.append(
            f"dbt build fact_cost_raw -> recon_summary (full refresh, models + tests): median"
            f" {statistics.median(builds):.1f} s  (runs: {runs(builds, 1)})"
        )
    print("\n".join(lines))
    if args.write_results:
        _write_results(lines, args)
    return 0


def _write_results(lines: list[str], args: argparse.Namespace) -> None:
    legacy = args.layout == "legacy"
    write_section(
        "bench_cur_legacy" if legacy else "bench_cur",
        [
            "### Legacy Parquet, ~125 columns" if legacy else "## CUR loader (bench/bench_cur.py)",
            "",
            f"{machine()}; shared 2-core machine (compare ratios).",
            f"Command: `.venv/bin/python bench/bench_cur.py --rows {args.rows} --repeat {args.repeat}"
            + (f" --layout legacy --files {args.files}" if legacy else "")
            + " --write-results`",
            "",
            "```",
            *lines,
            "```",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
