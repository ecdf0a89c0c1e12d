"""A deterministic landing zone of CUR deliveries, in the three formats AWS writes.

For each billing period it draws one month of line items (Usage, DiscountedUsage,
SavingsPlanCoveredUsage/Negation, SavingsPlanRecurringFee, RIFee, Fee, Tax, Credit, Refund) over
several services, accounts and resources, tags most usage lines with a tenant, and writes
`deliveries` month-to-date restatements: delivery k covers the first k/K of the month, the last
one the whole month, final (with `bill_invoice_id`). Months after the first add a tag column and a
product column (schema drift). Costs are integers of 1e-8 USD underneath, so tests can compute the
exact Decimal truth from `Month.truth` independently of the loader. A million line items take
seconds (numpy and Arrow throughout).
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from meterline.landing import Zone

FORMATS = ("cur2", "legacy-csv", "legacy-parquet")
SERVICES = ("AmazonEC2", "AmazonS3", "AmazonRDS", "AWSLambda", "AmazonDynamoDB", "AmazonCloudWatch", "AmazonSageMaker")
_SERVICE_WEIGHTS = np.array([0.35, 0.18, 0.15, 0.1, 0.1, 0.07, 0.05])
_USAGE_TYPES = {
    "AmazonEC2": ("BoxUsage:m5.large", "RunInstances", "i-"),
    "AmazonS3": ("TimedStorage-ByteHrs", "StandardStorage", "arn:aws:s3:::bucket-"),
    "AmazonRDS": ("InstanceUsage:db.r6g.large", "CreateDBInstance", "arn:aws:rds:us-east-1:db:"),
    "AWSLambda": ("Request", "Invoke", "arn:aws:lambda:us-east-1:function:"),
    "AmazonDynamoDB": ("ReadCapacityUnit-Hrs", "CommittedThroughput", "arn:aws:dynamodb:us-east-1:table/"),
    "AmazonCloudWatch": ("MetricMonitorUsage", "MetricStorage", "arn:aws:cloudwatch:us-east-1:metric/"),
    "AmazonSageMaker": ("ml.g5.xlarge-hosting", "RunInstance", "arn:aws:sagemaker:us-east-1:endpoint/"),
}
# (line type, share of lines, tagged?, sign)
LINE_TYPES = (
    ("Usage", 0.70, True, 1),
    ("DiscountedUsage", 0.07, True, 1),
    ("SavingsPlanCoveredUsage", 0.07, True, 1),
    ("SavingsPlanNegation", 0.05, True, -1),
    ("SavingsPlanRecurringFee", 0.01, False, 1),
    ("RIFee", 0.01, False, 1),
    ("Fee", 0.01, False, 1),
    ("Tax", 0.05, False, 1),
    ("Credit", 0.02, False, -1),
    ("Refund", 0.01, False, -1),
)
ACCOUNTS = ("111122223333", "444455556666", "777788889999")
PAYER = "111122223333"
UNITS = 10**8  # costs are integers of 1e-8 USD

# Legacy CUR header categories, longest first (snake prefix -> legacy category).
_CATEGORIES = (
    ("savings_plan_", "savingsPlan"),
    ("reservation_", "reservation"),
    ("line_item_", "lineItem"),
    ("identity_", "identity"),
    ("product_", "product"),
    ("pricing_", "pricing"),
    ("bill_", "bill"),
)


def legacy_header(snake_name: str) -> str:
    """`line_item_unblended_cost` -> `lineItem/UnblendedCost` (the normaliser's inverse)."""
    for prefix, category in _CATEGORIES:
        if snake_name.startswith(prefix):
            rest = snake_name[len(prefix) :]
            return f"{category}/{''.join(word.capitalize() for word in rest.split('_'))}"
    raise ValueError(snake_name)


@dataclass
class Month:
    """One billing period's final line items (what the last delivery holds) and their truth."""

    period: date
    table: pa.Table  # snake_case CUR 2.0 columns; resource_tags is a map
    truth: dict[str, np.ndarray]  # unblended/billed/amortized in 1e-8 USD, usage_day (0-based), tenant ('' = untagged)
    drift: bool

    def decimal(self, column: str, mask: np.ndarray | None = None) -> Decimal:
        values = self.truth[column] if mask is None else self.truth[column][mask]
        return Decimal(int(values.sum())) / UNITS


def _month_end(period: date) -> date:
    return date(period.year + (period.month == 12), period.month % 12 + 1, 1)


def month(
    period: date, rows: int, *, seed: int = 7, tenants: int = 12, drift: bool = False, cost_divisor: int = 1
) -> Month:
    """Draw `rows` line items for `period` (deterministic for a seed and period).

    `cost_divisor` divides every unit rate and fixed fee (the same draws, so the same lines at a
    lower price; amounts stay exact in 1e-8 USD): the demo uses it to put a month's cloud cost in
    proportion to its revenue. 1 (the default) is the generator every test knows.
    """
    if cost_divisor < 1:
        raise ValueError(f"cost_divisor must be a positive integer, got {cost_divisor}")
    rng = np.random.default_rng([seed, period.year, period.month])
    days = (_month_end(period) - period).days
    shares = np.array([t[1] for t in LINE_TYPES])
    kind = rng.choice(len(LINE_TYPES), size=rows, p=shares / shares.sum())
    service = rng.choice(len(SERVICES), size=rows, p=_SERVICE_WEIGHTS)
    hour = rng.integers(0, days * 24, size=rows)
    account = rng.integers(0, len(ACCOUNTS), size=rows)
    resource = rng.integers(0, 400, size=rows)
    amount_milli = rng.integers(1, 5_000_000, size=rows)  # usage amount in 1/1000 units
    rate_units = rng.integers(1_000, 2_000_000, size=rows) // cost_divisor  # 1e-8 USD per 1000 units

    unblended = (amount_milli * rate_units) // 1000  # 1e-8 USD, up to ~$100 a line
    fixed = np.isin(kind, [i for i, t in enumerate(LINE_TYPES) if not t[2]])
    unblended = np.where(fixed, rng.integers(10**6, 5 * 10**9, size=rows) // cost_divisor, unblended)
    names = np.array([t[0] for t in LINE_TYPES])
    kind_name = names[kind]
    discounted = kind_name == "DiscountedUsage"
    unblended = np.where(discounted, 0, unblended)
    sign = np.array([t[3] for t in LINE_TYPES])[kind]
    unblended = unblended * sign

    # Net unblended (an EDP discount of 3 % on usage); every column is exact in 1e-8.
    usage_like = np.isin(kind_name, ["Usage", "SavingsPlanCoveredUsage"])
    net = np.where(usage_like, unblended - (unblended * 3) // 100, unblended)
    reservation_effective = np.where(discounted, (amount_milli * rate_units) // 1600, 0)
    sp_effective = np.where(kind_name == "SavingsPlanCoveredUsage", (unblended * 70) // 100, 0)
    ri_unused_upfront = np.where(kind_name == "RIFee", unblended // 10, 0)
    ri_unused_recurring = np.where(kind_name == "RIFee", unblended // 20, 0)
    sp_commitment = np.where(kind_name == "SavingsPlanRecurringFee", unblended, 0)
    sp_used = np.where(kind_name == "SavingsPlanRecurringFee", (unblended * 85) // 100, 0)
    amortized = unblended.copy()
    amortized = np.where(discounted, reservation_effective, amortized)
    amortized = np.where(kind_name == "SavingsPlanCoveredUsage", sp_effective, amortized)
    amortized = np.where(kind_name == "SavingsPlanNegation", 0, amortized)
    amortized = np.where(kind_name == "RIFee", ri_unused_upfront + ri_unused_recurring, amortized)
    amortized = np.where(kind_name == "SavingsPlanRecurringFee", sp_commitment - sp_used, amortized)

    # Tenants: usage lines are tagged, except ~12 % of them and everything on SageMaker.
    tenant_ids = np.array([f"t-{n:04d}" for n in range(1, tenants + 1)])
    weights = rng.dirichlet(np.ones(tenants) * 2)
    tenant_index = rng.choice(tenants, size=rows, p=weights)
    taggable = np.isin(kind, [i for i, t in enumerate(LINE_TYPES) if t[2]])
    tagged = taggable & (rng.random(rows) > 0.12) & (np.array(SERVICES)[service] != "AmazonSageMaker")
    tenant = np.where(tagged, tenant_ids[tenant_index], "")

    start = np.datetime64(datetime(period.year, period.month, period.day), "h") + hour
    start = np.where(fixed, np.datetime64(datetime(period.year, period.month, period.day), "h"), start)
    usage_day = ((start - np.datetime64(datetime(period.year, period.month, period.day), "h")) // 24).astype(int)

    def take(options, index) -> pa.Array:
        return pc.take(pa.array(list(options), pa.string()), pa.array(index))

    service_names = np.array(SERVICES)[service]
    usage_type = np.array([_USAGE_TYPES[s][0] for s in SERVICES])[service]
    operation = np.array([_USAGE_TYPES[s][1] for s in SERVICES])[service]
    prefix = np.array([_USAGE_TYPES[s][2] for s in SERVICES])[service]
    resource_id = np.char.add(prefix.astype(str), np.char.mod("%012x", resource * 7919 + service))
    resource_id = np.where(
        np.isin(kind_name, ["Tax", "Credit", "Refund", "Fee", "RIFee", "SavingsPlanRecurringFee"]), "", resource_id
    )
    line_ids = np.char.mod("%016x", rng.integers(0, 2**62, size=rows))

    # Tags: a map per line; the tenant tag on tagged lines, a team tag on some, a cost centre in drift months.
    team = rng.integers(0, 4, size=rows)
    has_team = rng.random(rows) < 0.4
    counts = tagged.astype(np.int32) + has_team.astype(np.int32)
    if drift:
        has_cc = rng.random(rows) < 0.3
        counts = counts + has_cc.astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    total = int(offsets[-1])
    keys_flat = np.empty(total, dtype=object)
    values_flat = np.empty(total, dtype=object)
    position = offsets[:-1].copy()
    for mask, key, vals in (
        (tagged, "user_tenant_id", tenant),
        (has_team, "user_team", np.array(["core", "ml", "data", "web"])[team]),
        *(((has_cc, "user_cost_center", np.char.add("cc-", (resource % 5).astype(str))),) if drift else ()),
    ):
        idx = np.nonzero(mask)[0]
        keys_flat[position[idx]] = key
        values_flat[position[idx]] = vals[idx]
        position[idx] += 1
    tags = pa.MapArray.from_arrays(
        pa.array(offsets), pa.array(keys_flat, pa.string()), pa.array(values_flat, pa.string())
    )

    end_of_period = _month_end(period)
    usage_start = pa.array(start.astype("datetime64[ms]"), pa.timestamp("ms", tz="UTC"))
    usage_end = pa.array(
        np.where(fixed, np.datetime64(datetime(end_of_period.year, end_of_period.month, 1), "h"), start + 1).astype(
            "datetime64[ms]"
        ),
        pa.timestamp("ms", tz="UTC"),
    )

    def money(units: np.ndarray) -> pa.Array:
        return pa.array(units / UNITS, pa.float64())

    def nullable_money(units: np.ndarray, mask: np.ndarray) -> pa.Array:
        return pa.array(units / UNITS, pa.float64(), mask=~mask)

    n = rows
    columns = {
        "identity_line_item_id": pa.array(line_ids, pa.string()),
        "identity_time_interval": pa.array(
            np.full(n, f"{period:%Y-%m-%d}T00:00:00Z/{end_of_period:%Y-%m-%d}T00:00:00Z")
        ),
        "bill_invoice_id": pa.nulls(n, pa.string()),
        "bill_bill_type": pa.array(np.where(kind_name == "Refund", "Refund", "Anniversary")),
        "bill_payer_account_id": pa.array(np.full(n, PAYER)),
        "bill_billing_period_start_date": pa.array(
            np.full(n, np.datetime64(datetime(period.year, period.month, 1), "ms")), pa.timestamp("ms", tz="UTC")
        ),
        "bill_billing_period_end_date": pa.array(
            np.full(n, np.datetime64(datetime(end_of_period.year, end_of_period.month, 1), "ms")),
            pa.timestamp("ms", tz="UTC"),
        ),
        "line_item_usage_account_id": take(ACCOUNTS, account),
        "line_item_line_item_type": pa.array(kind_name.astype(str)),
        "line_item_usage_start_date": usage_start,
        "line_item_usage_end_date": usage_end,
        "line_item_product_code": pa.array(service_names.astype(str)),
        "line_item_usage_type": pa.array(usage_type.astype(str)),
        "line_item_operation": pa.array(operation.astype(str)),
        "line_item_resource_id": pa.array(resource_id.astype(str)),
        "line_item_usage_amount": pa.array(amount_milli / 1000, pa.float64()),
        "line_item_currency_code": pa.array(np.full(n, "USD")),
        "line_item_unblended_rate": pa.array(rate_units / UNITS, pa.float64()),
        "line_item_unblended_cost": money(unblended),
        "line_item_net_unblended_cost": money(net),
        "line_item_line_item_description": pa.array(
            np.char.add(kind_name.astype(str), np.char.add(" ", service_names.astype(str)))
        ),
        "product_region_code": pa.array(np.full(n, "us-east-1")),
        "reservation_effective_cost": nullable_money(reservation_effective, discounted),
        "reservation_unused_amortized_upfront_fee_for_billing_period": nullable_money(
            ri_unused_upfront, kind_name == "RIFee"
        ),
        "reservation_unused_recurring_fee": nullable_money(ri_unused_recurring, kind_name == "RIFee"),
        "savings_plan_savings_plan_effective_cost": nullable_money(
            sp_effective, kind_name == "SavingsPlanCoveredUsage"
        ),
        "savings_plan_total_commitment_to_date": nullable_money(sp_commitment, kind_name == "SavingsPlanRecurringFee"),
        "savings_plan_used_commitment": nullable_money(sp_used, kind_name == "SavingsPlanRecurringFee"),
        "resource_tags": tags,
    }
    if drift:
        columns["product_instance_family"] = pa.array(np.where(service_names == "AmazonEC2", "general_purpose", ""))
    truth = {
        "unblended": unblended,
        "billed": net,
        "amortized": amortized,
        "usage_day": usage_day,
        "tenant": tenant,
        "service": service_names,
        "kind": kind_name,
    }
    return Month(period, pa.table(columns), truth, drift)


def restatement(m: Month, index: int, deliveries: int, *, final: bool) -> pa.Table:
    """Delivery `index` (1-based) of `deliveries`: the lines of the first index/deliveries of
    the month; the final one carries the invoice id on every line."""
    days = (_month_end(m.period) - m.period).days
    cutoff = -(-days * index // deliveries)
    table = m.table.filter(pa.array(m.truth["usage_day"] < cutoff))
    if final:
        invoice = f"EUINUS{m.period:%y%m}{zlib.crc32(m.period.isoformat().encode()) % 10**6:06d}"
        table = table.set_column(
            table.column_names.index("bill_invoice_id"),
            "bill_invoice_id",
            pa.array([invoice] * table.num_rows, pa.string()),
        )
    return table


def _chunks(table: pa.Table, rows_per_file: int) -> list[pa.Table]:
    return [table.slice(i, rows_per_file) for i in range(0, max(table.num_rows, 1), rows_per_file)]


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def write_cur2(
    zone: Zone,
    table: pa.Table,
    period: date,
    delivered_at: datetime,
    *,
    root: str = "cur/cur2",
    export: str = "meterline-cur2",
    rows_per_file: int = 500_000,
) -> str:
    execution = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{export}/{period}/{delivered_at.isoformat()}"))
    folder = f"{_stamp(delivered_at)}-{execution}"
    data_dir = f"{root}/{export}/data/BILLING_PERIOD={period:%Y-%m}/{folder}"
    files = []
    for n, chunk in enumerate(_chunks(table, rows_per_file), start=1):
        rel = f"{data_dir}/{export}-{n:05d}.snappy.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(chunk, sink, compression="snappy")
        zone.write_bytes(rel, sink.getvalue().to_pybytes())
        files.append(f"s3://landing-bucket/{rel}")
    manifest = {
        "executionId": execution,
        "exportName": export,
        "billingPeriod": {
            "start": f"{period:%Y-%m-%d}T00:00:00.000Z",
            "end": f"{_month_end(period):%Y-%m-%d}T00:00:00.000Z",
        },
        "deliveryTime": _stamp(delivered_at),
        "dataFiles": files,
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
    }
    rel = f"{root}/{export}/metadata/BILLING_PERIOD={period:%Y-%m}/{folder}/{export}-Manifest.json"
    zone.write_bytes(rel, json.dumps(manifest, indent=1).encode())
    return rel


def _legacy_columns(table: pa.Table) -> pa.Table:
    """CUR 2.0 columns as legacy CSV headers, the tag map as one `resourceTags/user:*` column per key."""
    out: dict[str, pa.Array] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name == "resource_tags":
            continue
        out[legacy_header(name)] = column
    tags = table.column("resource_tags").combine_chunks()
    tags = tags.take(pa.array(np.arange(len(tags))))  # fresh offsets from 0: keys/items align with them
    keys = pc.unique(tags.keys).to_pylist()
    offsets = tags.offsets.to_numpy()
    parents = pa.array(np.repeat(np.arange(len(tags)), np.diff(offsets)))
    for key in sorted(keys):
        mask = pc.equal(tags.keys, key)
        column = pa.nulls(table.num_rows, pa.string()).to_numpy(zero_copy_only=False).astype(object)
        column[pc.filter(parents, mask).to_numpy()] = pc.filter(tags.items, mask).to_numpy(zero_copy_only=False)
        out[f"resourceTags/{key.replace('user_', 'user:', 1)}"] = pa.array(column, pa.string())
    return pa.table(out)


def write_legacy_csv(
    zone: Zone,
    table: pa.Table,
    period: date,
    delivered_at: datetime,
    *,
    root: str = "cur/legacy",
    report: str = "meterline-legacy",
    rows_per_file: int = 500_000,
) -> str:
    legacy = _legacy_columns(table.drop_columns(["line_item_net_unblended_cost"]))
    assembly = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{report}/{period}/{delivered_at.isoformat()}"))
    period_dir = f"{root}/{report}/{period:%Y%m%d}-{_month_end(period):%Y%m%d}"
    keys = []
    for n, chunk in enumerate(_chunks(legacy, rows_per_file), start=1):
        rel = f"{period_dir}/{assembly}/{report}-{n:05d}.csv.gz"
        sink = pa.BufferOutputStream()
        # Timestamps as AWS writes them: 2023-11-01T00:00:00Z.
        text_columns = [
            pc.strftime(c, format="%Y-%m-%dT%H:%M:%SZ") if pa.types.is_timestamp(c.type) else c for c in chunk.columns
        ]
        pacsv.write_csv(
            pa.table(text_columns, names=chunk.column_names), sink, pacsv.WriteOptions(quoting_style="needed")
        )
        zone.write_bytes(rel, gzip.compress(sink.getvalue().to_pybytes(), compresslevel=1))
        keys.append(f"prefix/{rel.split('/', 1)[1]}")
    manifest = {
        "assemblyId": assembly,
        "account": PAYER,
        "reportName": report,
        "compression": "GZIP",
        "contentType": "text/csv",
        "billingPeriod": {"start": f"{period:%Y%m%d}T000000.000Z", "end": f"{_month_end(period):%Y%m%d}T000000.000Z"},
        "creationTime": _stamp(delivered_at),
        "reportKeys": keys,
        "columns": [{"category": h.split("/")[0], "name": h.split("/", 1)[1]} for h in legacy.column_names],
    }
    body = json.dumps(manifest, indent=1).encode()
    zone.write_bytes(f"{period_dir}/{assembly}/{report}-Manifest.json", body)
    zone.write_bytes(f"{period_dir}/{report}-Manifest.json", body)
    return f"{period_dir}/{assembly}/{report}-Manifest.json"


def write_legacy_parquet(
    zone: Zone,
    table: pa.Table,
    period: date,
    *,
    root: str = "cur/athena",
    report: str = "meterline-athena",
    rows_per_file: int = 500_000,
) -> list[str]:
    """Athena-style legacy Parquet: `resource_tags_user_*` columns, overwritten in place per delivery,
    and the report's status file (READY once the files are written)."""
    legacy = _legacy_columns(table.drop_columns(["line_item_net_unblended_cost"]))
    from meterline.cur.normalise import snake, tag_key

    renamed = [
        f"resource_tags_{tag_key(name.split('/', 1)[1])}" if name.startswith("resourceTags/") else snake(name)
        for name in legacy.column_names
    ]
    legacy = legacy.rename_columns(renamed)
    folder = f"{root}/{report}/{report}/year={period.year}/month={period.month}"
    for old in zone.list(folder):
        zone.fs.delete_file(f"{zone.root}/{old.path}")
    written = []
    for n, chunk in enumerate(_chunks(legacy, rows_per_file), start=1):
        rel = f"{folder}/{report}-{n:05d}.snappy.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(chunk, sink, compression="snappy")
        zone.write_bytes(rel, sink.getvalue().to_pybytes())
        written.append(rel)
    write_report_status(zone, f"{root}/{report}", "READY")
    return written


def write_report_status(zone: Zone, report_dir: str, status: str) -> str:
    """The status AWS keeps beside an Athena-integrated report: READY, or UPDATING while it rewrites."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"status": [status]}), sink)
    rel = f"{report_dir}/cost_and_usage_data_status/cost_and_usage_data_status.parquet"
    zone.write_bytes(rel, sink.getvalue().to_pybytes())
    return rel


def generate(
    zone: Zone,
    *,
    start: date,
    months: int = 2,
    rows: int = 10_000,
    deliveries: int = 3,
    formats: tuple[str, ...] = ("cur2",),
    seed: int = 7,
    tenants: int = 12,
    cost_divisor: int = 1,
) -> list[Month]:
    """Write every delivery of `months` billing periods from `start`; returns each month's truth.

    Legacy Parquet is overwritten in place by each delivery (as Athena integration does), so
    only its last delivery stays in the zone; the other formats keep every delivery.
    `cost_divisor` scales every price down (see `month`).
    """
    out = []
    period = start.replace(day=1)
    for index in range(months):
        m = month(period, rows, seed=seed, tenants=tenants, drift=index > 0, cost_divisor=cost_divisor)
        base = datetime(_month_end(period).year, _month_end(period).month, 1, 6, tzinfo=UTC)
        for k in range(1, deliveries + 1):
            table = restatement(m, k, deliveries, final=k == deliveries)
            at = base - timedelta(days=(deliveries - k) * 3)
            if "cur2" in formats:
                write_cur2(zone, table, period, at)
            if "legacy-csv" in formats:
                write_legacy_csv(zone, table, period, at)
            if "legacy-parquet" in formats:
                write_legacy_parquet(zone, table, period)
        out.append(m)
        period = _month_end(period)
    return out
