"""A deterministic landing zone of CUR deliveries, in the three formats AWS writes.

For each billing period it draws one month of line items over several services, accounts and
resources, with every line item type AWS writes: Usage; DiscountedUsage and RIFee of two
reservations (with their upfront `Fee` in the purchase month); SavingsPlanCoveredUsage, each with
its SavingsPlanNegation, and SavingsPlanRecurringFee of two savings plans (with a
SavingsPlanUpfrontFee); Fee, Tax, Credit, Refund, EdpDiscount, BundledDiscount and
PrivateRateDiscount. Reservation and savings-plan columns are consistent per commitment: a
reservation's amortised upfront and recurring fee for the month are what its DiscountedUsage lines
used plus what its RIFee line reports unused; a savings plan's total commitment is what its covered
usage used plus what its recurring-fee line reports unused. Net columns carry a 3 % EDP discount
(the discount lines' own net cost is 0: AWS folds the discount into the net columns of the lines it
covers). Most usage lines are tagged with a tenant. It writes `deliveries` month-to-date
restatements: delivery k covers the first k/K of the month, the last one the whole month, final
(with `bill_invoice_id`). Months after the first add a tag column and a product column (schema
drift). Costs are integers of 1e-8 USD underneath, so tests can compute the exact Decimal truth
from `Month.truth` independently of the loader. A million line items take seconds (numpy and Arrow
throughout).
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
# usage type, operation, resource id prefix, AWS pricing unit, SKU
_USAGE_TYPES = {
    "AmazonEC2": ("BoxUsage:m5.large", "RunInstances", "i-", "Hrs", "6QCMYABX3D4FKHJ8"),
    "AmazonS3": ("TimedStorage-ByteHrs", "StandardStorage", "arn:aws:s3:::bucket-", "GB-Mo", "WP9ANXZGBYYSGJEA"),
    "AmazonRDS": (
        "InstanceUsage:db.r6g.large",
        "CreateDBInstance",
        "arn:aws:rds:us-east-1:db:",
        "Hrs",
        "8XWSBC4VKW2PQHWB",
    ),
    "AWSLambda": ("Request", "Invoke", "arn:aws:lambda:us-east-1:function:", "Requests", "SVGYKW2NHA9W5SNA"),
    "AmazonDynamoDB": (
        "ReadCapacityUnit-Hrs",
        "CommittedThroughput",
        "arn:aws:dynamodb:us-east-1:table/",
        "ReadCapacityUnit-Hrs",
        "R6PXMNYCEDGZ2EYN",
    ),
    "AmazonCloudWatch": (
        "MetricMonitorUsage",
        "MetricStorage",
        "arn:aws:cloudwatch:us-east-1:metric/",
        "Metrics",
        "CQX5E5VJQZS7XK6D",
    ),
    "AmazonSageMaker": (
        "ml.g5.xlarge-hosting",
        "RunInstance",
        "arn:aws:sagemaker:us-east-1:endpoint/",
        "Hrs",
        "B7MMYG8RWXZHS2KD",
    ),
}
# Line types drawn per line: (line type, share of lines, tagged?, sign). SavingsPlanNegation lines
# are each paired with a SavingsPlanCoveredUsage line (the same usage, negated).
LINE_TYPES = (
    ("Usage", 0.66, True, 1),
    ("DiscountedUsage", 0.07, True, 1),
    ("SavingsPlanCoveredUsage", 0.07, True, 1),
    ("SavingsPlanNegation", 0.07, True, -1),
    ("Fee", 0.01, False, 1),
    ("Tax", 0.05, False, 1),
    ("Credit", 0.02, False, -1),
    ("Refund", 0.01, False, -1),
    ("EdpDiscount", 0.02, False, -1),
    ("BundledDiscount", 0.01, False, -1),
    ("PrivateRateDiscount", 0.01, False, -1),
)
# Lines written once per commitment and month (appended after the drawn lines).
COMMITMENT_LINE_TYPES = ("RIFee", "Fee", "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee")
ACCOUNTS = ("111122223333", "444455556666", "777788889999")
PAYER = "111122223333"
UNITS = 10**8  # costs are integers of 1e-8 USD
REGION = "us-east-1"
# Reservations: (service, usage type of the RI fee, instance count); savings plans: (fee product code, covers)
_RESERVATIONS = (
    ("AmazonEC2", "HeavyUsage:m5.large", 4, f"arn:aws:ec2:us-east-1:{PAYER}:reserved-instances/"),
    ("AmazonRDS", "HeavyUsage:db.r6g.large", 2, f"arn:aws:rds:us-east-1:{PAYER}:ri:meterline-ri-"),
)
_SAVINGS_PLANS = (
    ("ComputeSavingsPlans", "ComputeSP:1yrPartialUpfront", ("AmazonEC2", "AWSLambda")),
    ("MachineLearningSavingsPlans", "MachineLearningSP:1yrPartialUpfront", ("AmazonSageMaker",)),
)
EDP_PERCENT = 3  # net columns: 3 % off
_RI_SHARE_PERCENT = 60  # an RI costs 60 % of on-demand: 30 % amortised upfront, 30 % recurring
_SP_SHARE_PERCENT = 70  # a savings plan rate is 70 % of on-demand
_SP_UPFRONT_PERCENT = 40  # partial upfront: 40 % of a plan's commitment is paid upfront

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
    # unblended/billed/amortized/net_amortized in 1e-8 USD (net_amortized: 1e-10 USD, see below),
    # usage_day (0-based), tenant ('' = untagged), service, kind, commitment (ARN or '')
    truth: dict[str, np.ndarray]
    drift: bool

    def decimal(self, column: str, mask: np.ndarray | None = None) -> Decimal:
        values = self.truth[column] if mask is None else self.truth[column][mask]
        scale = NET_AMORTIZED_UNITS if column == "net_amortized" else UNITS
        return Decimal(int(values.sum())) / scale


# A savings plan's net unused commitment is its unused commitment x 0.97: two more decimals.
NET_AMORTIZED_UNITS = UNITS * 100


def _month_end(period: date) -> date:
    return date(period.year + (period.month == 12), period.month % 12 + 1, 1)


def _net(units: np.ndarray) -> np.ndarray:
    """The EDP-discounted amount, exact in 1e-8 USD (floored like a discount AWS rounds down)."""
    return units - (units * EDP_PERCENT) // 100


def _arn_suffix(seed: int, period: date, n: int) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"meterline-commitment/{seed}/{period:%Y-%m}/{n}").hex


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
    commitment_lines = len(_RESERVATIONS) + 1 + len(_SAVINGS_PLANS) + 1
    if rows <= commitment_lines:
        raise ValueError(f"rows must be more than {commitment_lines}: every month holds its commitment lines")
    rng = np.random.default_rng([seed, period.year, period.month])
    days = (_month_end(period) - period).days
    drawn = rows - commitment_lines
    names = np.array([t[0] for t in LINE_TYPES])
    shares = np.array([t[1] for t in LINE_TYPES])
    kind = names[rng.choice(len(LINE_TYPES), size=drawn, p=shares / shares.sum())]
    service = np.array(SERVICES)[rng.choice(len(SERVICES), size=drawn, p=_SERVICE_WEIGHTS)]
    hour = rng.integers(0, days * 24, size=drawn)
    account = rng.integers(0, len(ACCOUNTS), size=drawn)
    resource = rng.integers(0, 400, size=drawn)
    amount_milli = rng.integers(1, 5_000_000, size=drawn)  # usage amount in 1/1000 units
    rate_units = rng.integers(1_000, 2_000_000, size=drawn) // cost_divisor  # 1e-8 USD per 1000 units
    fixed_fee = rng.integers(10**6, 5 * 10**9, size=drawn) // cost_divisor
    weights = rng.dirichlet(np.ones(tenants) * 2)
    tenant_index = rng.choice(tenants, size=drawn, p=weights)
    untagged_draw = rng.random(drawn)
    team = rng.integers(0, 4, size=drawn)
    has_team = rng.random(drawn) < 0.4
    has_cc = rng.random(drawn) < 0.3
    line_ids = np.char.mod("%016x", rng.integers(0, 2**62, size=rows))
    unused = rng.integers(10**6, 10**9, size=(2, len(_RESERVATIONS) + len(_SAVINGS_PLANS))) // cost_divisor

    # Reservations cover EC2 and RDS, savings plans EC2, Lambda (compute) and SageMaker (ML).
    discounted = kind == "DiscountedUsage"
    service = np.where(discounted & (service != "AmazonRDS"), "AmazonEC2", service)
    reservation = np.where(discounted, np.where(service == "AmazonRDS", 1, 0), -1)
    covered_kinds = np.isin(kind, ["SavingsPlanCoveredUsage", "SavingsPlanNegation"])
    plan_services = {s: n for n, (_, _, covers) in enumerate(_SAVINGS_PLANS) for s in covers}
    service = np.where(covered_kinds & ~np.isin(service, list(plan_services)), "AmazonEC2", service)
    # Every negation repeats one covered line: pair them in order; the unpaired become plain usage.
    covered_at, negation_at = (
        np.nonzero(kind == "SavingsPlanCoveredUsage")[0],
        np.nonzero(kind == "SavingsPlanNegation")[0],
    )
    pairs = min(len(covered_at), len(negation_at))
    kind[covered_at[pairs:]] = "Usage"
    kind[negation_at[pairs:]] = "Usage"
    source, target = covered_at[:pairs], negation_at[:pairs]
    for values in (
        service,
        hour,
        account,
        resource,
        amount_milli,
        rate_units,
        tenant_index,
        untagged_draw,
        team,
        has_team,
        has_cc,
    ):
        values[target] = values[source]
    plan = np.where(
        np.isin(kind, ["SavingsPlanCoveredUsage", "SavingsPlanNegation"]),
        np.array([plan_services.get(s, 0) for s in service]),
        -1,
    )

    # Drawn lines, in 1e-8 USD.
    on_demand = (amount_milli * rate_units) // 1000  # up to ~$100 a line
    order = np.argsort(names)
    sign = np.array([t[3] for t in LINE_TYPES])[order[np.searchsorted(names[order], kind)]]
    fixed = ~np.isin(kind, ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation"])
    unblended = np.where(fixed, fixed_fee, on_demand) * sign
    unblended = np.where(discounted, 0, unblended)  # an RI's cost is on its RIFee line
    discount_line = np.isin(kind, ["EdpDiscount", "BundledDiscount", "PrivateRateDiscount"])
    edp = np.isin(kind, ["Usage", "SavingsPlanCoveredUsage", "SavingsPlanNegation"])
    net = np.where(edp, np.sign(unblended) * _net(np.abs(unblended)), unblended)
    net = np.where(discount_line, 0, net)
    ri_upfront_for_usage = np.where(discounted, on_demand * (_RI_SHARE_PERCENT // 2) // 100, 0)
    ri_recurring_for_usage = np.where(discounted, on_demand * (_RI_SHARE_PERCENT // 2) // 100, 0)
    ri_effective = ri_upfront_for_usage + ri_recurring_for_usage
    sp_covered = kind == "SavingsPlanCoveredUsage"
    sp_effective = np.where(sp_covered, on_demand * _SP_SHARE_PERCENT // 100, 0)
    amortized = np.select(
        [discounted, sp_covered, kind == "SavingsPlanNegation"], [ri_effective, sp_effective, 0], unblended
    )
    net_amortized = np.select(
        [discounted, sp_covered, kind == "SavingsPlanNegation"], [_net(ri_effective), _net(sp_effective), 0], net
    )

    # One RIFee per reservation: what its DiscountedUsage lines did not use, and an upfront Fee
    # (this month's purchase of the first one). One SavingsPlanRecurringFee per savings plan: its
    # commitment is what its covered lines used plus an unused part, a whole number of 1e-4 USD so
    # that 40 % upfront / 60 % recurring and their 3 % discount stay exact; and an upfront fee.
    hours = days * 24
    commitment_rows: list[dict] = []
    for n, (ri_service, ri_usage_type, count, arn_prefix) in enumerate(_RESERVATIONS):
        mine = reservation == n
        upfront = int(ri_upfront_for_usage[mine].sum()) + int(unused[0, n])
        recurring = int(ri_recurring_for_usage[mine].sum()) + int(unused[1, n])
        unused_upfront, unused_recurring = int(unused[0, n]), int(unused[1, n])
        used_hours = int(amount_milli[mine].sum())  # thousandths of an hour
        arn = f"{arn_prefix}{_arn_suffix(seed, period, n)}"
        base = {"service": ri_service, "usage_type": ri_usage_type, "arn": arn, "unit": "Hrs"}
        commitment_rows.append(
            base
            | {
                "kind": "RIFee",
                "unblended": recurring,
                "net": int(_net(np.int64(recurring))),
                "amortized": unused_upfront + unused_recurring,
                "net_amortized": int(_net(np.int64(unused_upfront)) + _net(np.int64(unused_recurring))) * 100,
                "amount_milli": count * hours * 1000,
                "bill_type": "Anniversary",
                "ri": (upfront, unused_upfront, unused_recurring, max(count * hours * 1000 - used_hours, 0)),
            }
        )
        if n == 0:
            fee = upfront * 12
            commitment_rows.append(
                base
                | {
                    "kind": "Fee",
                    "unblended": fee,
                    "net": int(_net(np.int64(fee))),
                    "amortized": 0,
                    "net_amortized": 0,
                    "amount_milli": count * 1000,
                    "bill_type": "Purchase",
                }
            )
    for n, (product_code, fee_usage_type, _) in enumerate(_SAVINGS_PLANS):
        mine = (plan == n) & sp_covered
        used = int(sp_effective[mine].sum())
        total = -(-(used + int(unused[0, len(_RESERVATIONS) + n])) // 10_000) * 10_000
        upfront = total * _SP_UPFRONT_PERCENT // 100
        recurring = total - upfront
        arn = f"arn:aws:savingsplans::{PAYER}:savingsplan/{uuid.UUID(_arn_suffix(seed, period, 10 + n))}"
        base = {"service": product_code, "usage_type": fee_usage_type, "arn": arn, "unit": "Hrs"}
        commitment_rows.append(
            base
            | {
                "kind": "SavingsPlanRecurringFee",
                "unblended": recurring,
                "net": int(_net(np.int64(recurring))),
                "amortized": total - used,
                "net_amortized": (total - used) * (100 - EDP_PERCENT),
                "amount_milli": hours * 1000,
                "bill_type": "Anniversary",
                "sp": (total, used, upfront, recurring),
            }
        )
        if n == 0:
            fee = upfront * 12
            commitment_rows.append(
                base
                | {
                    "kind": "SavingsPlanUpfrontFee",
                    "unblended": fee,
                    "net": int(_net(np.int64(fee))),
                    "amortized": 0,
                    "net_amortized": 0,
                    "amount_milli": 1000,
                    "bill_type": "Purchase",
                }
            )
    assert len(commitment_rows) == commitment_lines

    # The drawn lines and the commitment lines, as one set of columns.
    extra = len(commitment_rows)

    def joined(drawn_values: np.ndarray, key: str, default=None) -> np.ndarray:
        tail = [row.get(key, default) for row in commitment_rows]
        return np.concatenate([drawn_values, np.array(tail, dtype=drawn_values.dtype)])

    kind_all = joined(kind.astype(object), "kind").astype(str)
    service_all = joined(service.astype(object), "service").astype(str)
    unblended_all = joined(unblended, "unblended")
    net_all = joined(net, "net")
    amortized_all = joined(amortized, "amortized")
    net_amortized_all = joined(net_amortized * 100, "net_amortized")
    amount_all = joined(amount_milli, "amount_milli")
    fixed_all = np.concatenate([fixed, np.ones(extra, bool)])
    ri_arns = [row["arn"] for row in commitment_rows if row["kind"] == "RIFee"]
    sp_arns = [row["arn"] for row in commitment_rows if row["kind"] == "SavingsPlanRecurringFee"]
    reservation_arn = np.concatenate(
        [
            np.where(reservation >= 0, np.array(ri_arns, dtype=object)[np.maximum(reservation, 0)], ""),
            np.array([r["arn"] if r["kind"] in ("RIFee", "Fee") else "" for r in commitment_rows], dtype=object),
        ]
    ).astype(str)
    plan_arn = np.concatenate(
        [
            np.where(plan >= 0, np.array(sp_arns, dtype=object)[np.maximum(plan, 0)], ""),
            np.array([r["arn"] if r["kind"].startswith("SavingsPlan") else "" for r in commitment_rows], dtype=object),
        ]
    ).astype(str)
    commitment = np.where(reservation_arn != "", reservation_arn, plan_arn)
    account_all = np.concatenate([account, np.zeros(extra, np.int64)])  # commitments belong to the payer
    start_hour = np.concatenate([np.where(fixed, 0, hour), np.zeros(extra, np.int64)])
    usage_day = start_hour // 24

    # Tenants: usage lines are tagged, except ~12 % of them and everything on SageMaker.
    tenant_ids = np.array([f"t-{n:04d}" for n in range(1, tenants + 1)])
    taggable = np.isin(kind, ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation"])
    tagged = taggable & (untagged_draw > 0.12) & (service != "AmazonSageMaker")
    tenant = np.concatenate([np.where(tagged, tenant_ids[tenant_index], ""), np.full(extra, "")])
    tagged_all = np.concatenate([tagged, np.zeros(extra, bool)])
    has_team_all = np.concatenate([has_team & ~fixed, np.zeros(extra, bool)])
    has_cc_all = np.concatenate([has_cc & ~fixed, np.zeros(extra, bool)]) if drift else None
    team_all = np.concatenate([team, np.zeros(extra, np.int64)])
    resource_all = np.concatenate([resource, np.zeros(extra, np.int64)])

    # Tags: a map per line; the tenant tag on tagged lines, a team tag on some, a cost centre in drift months.
    counts = tagged_all.astype(np.int32) + has_team_all.astype(np.int32)
    if drift:
        counts = counts + has_cc_all.astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    keys_flat = np.empty(int(offsets[-1]), dtype=object)
    values_flat = np.empty(int(offsets[-1]), dtype=object)
    position = offsets[:-1].copy()
    for mask, key, vals in (
        (tagged_all, "user_tenant_id", tenant),
        (has_team_all, "user_team", np.array(["core", "ml", "data", "web"])[team_all]),
        *(((has_cc_all, "user_cost_center", np.char.add("cc-", (resource_all % 5).astype(str))),) if drift else ()),
    ):
        idx = np.nonzero(mask)[0]
        keys_flat[position[idx]] = key
        values_flat[position[idx]] = vals[idx]
        position[idx] += 1
    tags = pa.MapArray.from_arrays(
        pa.array(offsets), pa.array(keys_flat, pa.string()), pa.array(values_flat, pa.string())
    )

    # Descriptive columns.
    usage_info = {s: _USAGE_TYPES[s] for s in SERVICES}
    usage_type = np.array([usage_info[s][0] if s in usage_info else "" for s in service_all], dtype=object)
    operation = np.array([usage_info[s][1] if s in usage_info else "" for s in service_all], dtype=object)
    pricing_unit = np.array([usage_info[s][3] if s in usage_info else "" for s in service_all], dtype=object)
    sku = np.array([usage_info[s][4] if s in usage_info else "" for s in service_all], dtype=object)
    for n, row in enumerate(commitment_rows):
        usage_type[drawn + n], pricing_unit[drawn + n], operation[drawn + n] = (
            row["usage_type"],
            row["unit"],
            row["kind"],
        )
    prefix = np.array([usage_info[s][2] if s in usage_info else "" for s in service_all], dtype=object)
    resource_id = np.char.add(
        prefix.astype(str), np.char.mod("%012x", resource_all * 7919 + np.char.str_len(service_all.astype(str)))
    )
    resource_id = np.where(fixed_all, "", resource_id)
    usage_lines = ~fixed_all
    no_product = np.isin(kind_all, ["Tax", "Credit", "Refund", "EdpDiscount", "BundledDiscount", "PrivateRateDiscount"])
    pricing_unit = np.where(no_product, "", pricing_unit)
    sku = np.where(no_product | ~np.isin(service_all, SERVICES), "", sku)
    term = np.select(
        [np.isin(kind_all, ["DiscountedUsage", "RIFee"]) | (reservation_arn != ""), plan_arn != "", usage_lines],
        ["Reserved", "Savings Plan", "OnDemand"],
        "",
    )
    # AWS shares one rate id between every SKU a reservation covers: SkuPriceId must not rely on it alone.
    rate_id = np.where(
        kind_all == "DiscountedUsage",
        np.char.add("ri-rate-", np.char.mod("%d", np.maximum(np.concatenate([reservation, np.zeros(extra, int)]), 0))),
        np.where(sku != "", np.char.add(sku.astype(str), np.char.add(".", term.astype(str))), ""),
    )
    on_demand_all = np.concatenate([np.where(fixed, 0, on_demand), np.zeros(extra, np.int64)])
    rate_all = np.concatenate([np.where(fixed, 0, rate_units), np.zeros(extra, np.int64)])
    region = np.where(
        no_product | np.char.startswith(service_all.astype(str), "AmazonCloudWatch") & fixed_all, "", REGION
    )
    region = np.where(np.isin(kind_all, ["SavingsPlanRecurringFee", "SavingsPlanUpfrontFee"]), "", region)
    descriptions = np.char.add(kind_all, np.char.add(" ", service_all))
    bill_type = np.where(kind_all == "Refund", "Refund", "Anniversary").astype(object)
    for n, row in enumerate(commitment_rows):
        bill_type[drawn + n] = row["bill_type"]

    # Reservation and savings-plan columns, each on the line types AWS fills it for.
    ri_fee_at = [drawn + n for n, r in enumerate(commitment_rows) if r["kind"] == "RIFee"]
    sp_fee_at = [drawn + n for n, r in enumerate(commitment_rows) if r["kind"] == "SavingsPlanRecurringFee"]

    def column(drawn_values: np.ndarray | None, at: list[int], key: str, index: int) -> np.ndarray:
        out = np.concatenate(
            [drawn_values if drawn_values is not None else np.zeros(drawn, np.int64), np.zeros(extra, np.int64)]
        )
        for position_, row in zip(at, [commitment_rows[a - drawn] for a in at], strict=True):
            out[position_] = row[key][index]
        return out

    discounted_all = kind_all == "DiscountedUsage"
    covered_all = kind_all == "SavingsPlanCoveredUsage"
    ri_fee = kind_all == "RIFee"
    sp_fee = kind_all == "SavingsPlanRecurringFee"
    ri_effective_all = np.concatenate([ri_effective, np.zeros(extra, np.int64)])
    sp_effective_all = np.concatenate([sp_effective, np.zeros(extra, np.int64)])
    ri_amortized_upfront = column(None, ri_fee_at, "ri", 0)
    ri_unused_upfront = column(None, ri_fee_at, "ri", 1)
    ri_unused_recurring = column(None, ri_fee_at, "ri", 2)
    ri_unused_hours = column(None, ri_fee_at, "ri", 3)
    sp_total = column(None, sp_fee_at, "sp", 0)
    sp_used = column(None, sp_fee_at, "sp", 1)
    sp_upfront = column(None, sp_fee_at, "sp", 2)
    sp_recurring = column(None, sp_fee_at, "sp", 3)

    end_of_period = _month_end(period)
    period_start = np.datetime64(datetime(period.year, period.month, period.day), "h")
    start = period_start + start_hour
    usage_start = pa.array(start.astype("datetime64[ms]"), pa.timestamp("ms", tz="UTC"))
    usage_end = pa.array(
        np.where(fixed_all, np.datetime64(datetime(end_of_period.year, end_of_period.month, 1), "h"), start + 1).astype(
            "datetime64[ms]"
        ),
        pa.timestamp("ms", tz="UTC"),
    )

    def money(units: np.ndarray) -> pa.Array:
        return pa.array(units / UNITS, pa.float64())

    def nullable_money(units: np.ndarray, mask: np.ndarray) -> pa.Array:
        return pa.array(units / UNITS, pa.float64(), mask=~mask)

    def text(values: np.ndarray) -> pa.Array:
        return pa.array(values.astype(str), pa.string())

    n = rows
    columns = {
        "identity_line_item_id": pa.array(line_ids, pa.string()),
        "identity_time_interval": pa.array(
            np.full(n, f"{period:%Y-%m-%d}T00:00:00Z/{end_of_period:%Y-%m-%d}T00:00:00Z")
        ),
        "bill_invoice_id": pa.nulls(n, pa.string()),
        "bill_bill_type": text(bill_type),
        "bill_payer_account_id": pa.array(np.full(n, PAYER)),
        "bill_billing_period_start_date": pa.array(
            np.full(n, np.datetime64(datetime(period.year, period.month, 1), "ms")), pa.timestamp("ms", tz="UTC")
        ),
        "bill_billing_period_end_date": pa.array(
            np.full(n, np.datetime64(datetime(end_of_period.year, end_of_period.month, 1), "ms")),
            pa.timestamp("ms", tz="UTC"),
        ),
        "line_item_usage_account_id": pc.take(pa.array(list(ACCOUNTS), pa.string()), pa.array(account_all)),
        "line_item_line_item_type": text(kind_all),
        "line_item_usage_start_date": usage_start,
        "line_item_usage_end_date": usage_end,
        "line_item_product_code": text(service_all),
        "line_item_usage_type": text(np.where(no_product, "", usage_type)),
        "line_item_operation": text(np.where(no_product, "", operation)),
        "line_item_resource_id": text(resource_id),
        "line_item_usage_amount": pa.array(np.where(no_product, 0, amount_all) / 1000, pa.float64()),
        "line_item_currency_code": pa.array(np.full(n, "USD")),
        "line_item_unblended_rate": pa.array(rate_all / UNITS, pa.float64()),
        "line_item_unblended_cost": money(unblended_all),
        "line_item_net_unblended_cost": money(net_all),
        "line_item_line_item_description": text(descriptions),
        "product_region_code": text(region),
        "product_sku": text(sku),
        "pricing_unit": text(pricing_unit),
        "pricing_term": text(term),
        "pricing_rate_id": text(rate_id),
        "pricing_public_on_demand_cost": money(on_demand_all),
        "pricing_public_on_demand_rate": pa.array(rate_all / UNITS, pa.float64()),
        "reservation_reservation_a_r_n": text(reservation_arn),
        "reservation_effective_cost": nullable_money(ri_effective_all, discounted_all),
        "reservation_net_effective_cost": nullable_money(_net(ri_effective_all), discounted_all),
        "reservation_amortized_upfront_cost_for_usage": nullable_money(
            np.concatenate([ri_upfront_for_usage, np.zeros(extra, np.int64)]), discounted_all
        ),
        "reservation_recurring_fee_for_usage": nullable_money(
            np.concatenate([ri_recurring_for_usage, np.zeros(extra, np.int64)]), discounted_all
        ),
        "reservation_amortized_upfront_fee_for_billing_period": nullable_money(ri_amortized_upfront, ri_fee),
        "reservation_net_amortized_upfront_fee_for_billing_period": nullable_money(_net(ri_amortized_upfront), ri_fee),
        "reservation_unused_amortized_upfront_fee_for_billing_period": nullable_money(ri_unused_upfront, ri_fee),
        "reservation_net_unused_amortized_upfront_fee_for_billing_period": nullable_money(
            _net(ri_unused_upfront), ri_fee
        ),
        "reservation_unused_recurring_fee": nullable_money(ri_unused_recurring, ri_fee),
        "reservation_net_unused_recurring_fee": nullable_money(_net(ri_unused_recurring), ri_fee),
        "reservation_unused_quantity": pa.array(ri_unused_hours / 1000, pa.float64(), mask=~ri_fee),
        "savings_plan_savings_plan_a_r_n": text(plan_arn),
        "savings_plan_savings_plan_rate": pa.array(
            rate_all * _SP_SHARE_PERCENT / 100 / UNITS,
            pa.float64(),
            mask=~np.isin(kind_all, ["SavingsPlanCoveredUsage", "SavingsPlanNegation"]),
        ),
        "savings_plan_savings_plan_effective_cost": nullable_money(sp_effective_all, covered_all),
        "savings_plan_net_savings_plan_effective_cost": nullable_money(_net(sp_effective_all), covered_all),
        "savings_plan_total_commitment_to_date": nullable_money(sp_total, sp_fee),
        "savings_plan_used_commitment": nullable_money(sp_used, sp_fee),
        "savings_plan_amortized_upfront_commitment_for_billing_period": nullable_money(sp_upfront, sp_fee),
        "savings_plan_net_amortized_upfront_commitment_for_billing_period": nullable_money(_net(sp_upfront), sp_fee),
        "savings_plan_recurring_commitment_for_billing_period": nullable_money(sp_recurring, sp_fee),
        "savings_plan_net_recurring_commitment_for_billing_period": nullable_money(_net(sp_recurring), sp_fee),
        "resource_tags": tags,
    }
    if drift:
        columns["product_instance_family"] = pa.array(np.where(service_all == "AmazonEC2", "general_purpose", ""))
    truth = {
        "unblended": unblended_all,
        "billed": net_all,
        "amortized": amortized_all,
        "net_amortized": net_amortized_all,
        "usage_day": usage_day,
        "tenant": tenant,
        "service": service_all,
        "kind": kind_all,
        "commitment": commitment,
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


def _without_net_columns(table: pa.Table) -> pa.Table:
    """The legacy reports are written as for an account without discounts: no `*_net_*` columns."""
    return table.drop_columns([name for name in table.column_names if "_net_" in f"_{name}"])


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
    legacy = _legacy_columns(_without_net_columns(table))
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
    legacy = _legacy_columns(_without_net_columns(table))
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
