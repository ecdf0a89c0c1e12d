"""A realistic, seeded billing catalog for one month, written as finance's CSV export
(docs/catalog.md) under `LANDING_URL/catalog/`.

The month it is built around (`period`) has every pricing case in it: subscriptions that start
on the 15th, end mid-month, change plan mid-month; all four price models with included units and
tiers with flat fees; quotas that block or allow overage; a tax rate change inside the month;
credits (one larger than any invoice); a JPY tenant (no minor unit); allocation rules for the
services the CUR generator uses, with one service left without a rule; monthly budgets for the
first tenants (in their currency) and for two services (USD).
"""

from __future__ import annotations

import csv
import io
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from meterline.landing import Zone

# The five metrics every component of the project agrees on (the events generator emits these).
METRICS: list[dict[str, str]] = [
    {
        "metric_code": "llm_tokens",
        "event_type": "llm.completion",
        "aggregation": "sum",
        "property": "tokens",
        "unit": "tokens",
    },
    {
        "metric_code": "api_requests",
        "event_type": "api.request",
        "aggregation": "count",
        "property": "",
        "unit": "requests",
    },
    {
        "metric_code": "storage_bytes",
        "event_type": "storage.write",
        "aggregation": "sum",
        "property": "bytes",
        "unit": "bytes",
    },
    {
        "metric_code": "compute_ms",
        "event_type": "compute.job",
        "aggregation": "sum",
        "property": "duration_ms",
        "unit": "ms",
    },
    {
        "metric_code": "storage_peak_bytes",
        "event_type": "storage.snapshot",
        "aggregation": "max",
        "property": "bytes",
        "unit": "bytes",
    },
]

# Country -> (currency, tax rate). DE changes its rate on the 16th of the generated month.
COUNTRIES: dict[str, tuple[str, str]] = {
    "US": ("USD", "0.00"),
    "DE": ("EUR", "0.19"),
    "FR": ("EUR", "0.20"),
    "GB": ("GBP", "0.20"),
    "JP": ("JPY", "0.10"),
    "CH": ("CHF", "0.081"),
}
# Prices are written in USD and scaled per currency (JPY has no minor unit: whole yen).
FX: dict[str, Decimal] = {
    "USD": Decimal(1),
    "EUR": Decimal("0.9"),
    "GBP": Decimal("0.8"),
    "JPY": Decimal(150),
    "CHF": Decimal("0.9"),
}

# The services the CUR generator bills, and how their untagged cost is shared out.
ALLOCATION_RULES: list[tuple[str, str, str]] = [
    ("AmazonEC2", "usage_share", "compute_ms"),
    ("AmazonS3", "usage_share", "storage_bytes"),
    ("AWSDataTransfer", "usage_share", "api_requests"),
    ("AmazonRDS", "even", ""),
    ("AmazonDynamoDB", "tag", ""),
    # AmazonCloudWatch deliberately has no rule: its untagged cost goes to the quarantine pool.
]
SERVICES_WITHOUT_RULE = ("AmazonCloudWatch",)

FILES = (
    "tenants.csv",
    "plans.csv",
    "subscriptions.csv",
    "metrics.csv",
    "price_components.csv",
    "price_tiers.csv",
    "quotas.csv",
    "tax_rates.csv",
    "credits.csv",
    "allocation_rules.csv",
    "budgets.csv",
)


@dataclass
class GeneratedCatalog:
    """What was written: file name -> rows (as written, all strings), and where."""

    landing_url: str
    period: date
    files: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def row_counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.files.items()}


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _prev_month(d: date) -> date:
    return date(d.year - (d.month == 1), (d.month - 2) % 12 + 1, 1)


def _ts(d: date) -> str:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal, currency: str) -> str:
    """A price in `currency`: exact (unit prices keep all their decimals), never scientific."""
    return format((value * FX[currency]).normalize(), "f")


def _fee(value: Decimal, currency: str) -> str:
    """A fee or amount in `currency`, in its minor unit (whole yen)."""
    places = Decimal(1) if currency == "JPY" else Decimal("0.01")
    return format((value * FX[currency]).quantize(places), "f")


def _plans(currencies: list[str]) -> tuple[list[dict], list[dict], list[dict]]:
    """Three plans per currency, each pricing the five metrics with a different mix of models."""
    plans, components, tiers = [], [], []
    for cur in currencies:
        c = cur.lower()
        plans += [
            {
                "plan_id": f"starter-{c}",
                "name": f"Starter ({cur})",
                "currency": cur,
                "monthly_base_fee": _fee(Decimal(29), cur),
                "minimum_commitment": _fee(Decimal(0), cur),
            },
            {
                "plan_id": f"pro-{c}",
                "name": f"Pro ({cur})",
                "currency": cur,
                "monthly_base_fee": _fee(Decimal(299), cur),
                "minimum_commitment": _fee(Decimal(500), cur),
            },
            {
                "plan_id": f"enterprise-{c}",
                "name": f"Enterprise ({cur})",
                "currency": cur,
                "monthly_base_fee": _fee(Decimal(1999), cur),
                "minimum_commitment": _fee(Decimal(5000), cur),
            },
        ]

        def comp(
            plan: str, metric: str, model: str, included: str = "0", unit_price: str = "", size: str = "", c: str = c
        ) -> None:
            components.append(
                {
                    "plan_id": f"{plan}-{c}",
                    "metric_code": metric,
                    "model": model,
                    "included_units": included,
                    "unit_price": unit_price,
                    "package_size": size,
                }
            )

        def tier(
            plan: str,
            metric: str,
            n: int,
            up_to: str,
            price: Decimal,
            flat: Decimal = Decimal(0),
            c: str = c,
            cur: str = cur,
        ) -> None:
            tiers.append(
                {
                    "plan_id": f"{plan}-{c}",
                    "metric_code": metric,
                    "tier": str(n),
                    "up_to": up_to,
                    "unit_price": _money(price, cur),
                    "flat_fee": _fee(flat, cur),
                }
            )

        # Starter: simple per-unit prices, a little free usage.
        comp("starter", "llm_tokens", "per_unit", "100000", _money(Decimal("0.00002"), cur))
        comp("starter", "api_requests", "per_unit", "1000", _money(Decimal("0.0004"), cur))
        comp("starter", "storage_bytes", "per_unit", "0", _money(Decimal("0.000000002"), cur))
        comp("starter", "compute_ms", "per_unit", "0", _money(Decimal("0.0000015"), cur))
        comp("starter", "storage_peak_bytes", "per_unit", "0", _money(Decimal("0.00000001"), cur))
        # Pro: graduated tokens (with a flat fee on tier 2), packaged requests, volume compute.
        comp("pro", "llm_tokens", "graduated", "50000")
        tier("pro", "llm_tokens", 1, "1000000", Decimal("0.00002"))
        tier("pro", "llm_tokens", 2, "10000000", Decimal("0.000015"), Decimal(5))
        tier("pro", "llm_tokens", 3, "", Decimal("0.00001"))
        comp("pro", "api_requests", "package", "0", _money(Decimal("0.5"), cur), "1000")
        comp("pro", "storage_bytes", "per_unit", "1000000", _money(Decimal("0.0000000015"), cur))
        comp("pro", "compute_ms", "volume", "0")
        tier("pro", "compute_ms", 1, "1000000", Decimal("0.000002"))
        tier("pro", "compute_ms", 2, "50000000", Decimal("0.0000015"), Decimal(10))
        tier("pro", "compute_ms", 3, "", Decimal("0.000001"), Decimal(25))
        comp("pro", "storage_peak_bytes", "per_unit", "0", _money(Decimal("0.000000008"), cur))
        # Enterprise: volume tokens, graduated requests, package storage.
        comp("enterprise", "llm_tokens", "volume", "1000000")
        tier("enterprise", "llm_tokens", 1, "5000000", Decimal("0.000012"))
        tier("enterprise", "llm_tokens", 2, "", Decimal("0.000008"), Decimal(50))
        comp("enterprise", "api_requests", "graduated", "10000")
        tier("enterprise", "api_requests", 1, "100000", Decimal("0.0003"), Decimal(2))
        tier("enterprise", "api_requests", 2, "", Decimal("0.0001"), Decimal(3))
        comp("enterprise", "storage_bytes", "package", "0", _money(Decimal("0.02"), cur), "10000000")
        comp("enterprise", "compute_ms", "per_unit", "0", _money(Decimal("0.000001"), cur))
        comp("enterprise", "storage_peak_bytes", "per_unit", "0", _money(Decimal("0.000000005"), cur))
    return plans, components, tiers


def generate_catalog(
    landing_url: str,
    *,
    seed: int = 7,
    tenants: int = 12,
    subscriptions: int = 24,
    period: date = date(2026, 10, 1),
    currencies: tuple[str, ...] = ("USD", "EUR", "GBP", "JPY", "CHF"),
    aws_invoice_totals: dict[str, tuple[Decimal, str]] | None = None,
) -> GeneratedCatalog:
    """Write the catalog files for `period` (the first day of a month) and return their rows.

    Every subscription is active in `period` for at least one day. The first subscriptions cover
    the edge cases in a fixed order (start on the 15th, end mid-month, plan change mid-month);
    the rest are drawn at random. `aws_invoice_totals` maps `YYYY-MM` to (total, currency) and
    writes the optional aws_invoice_totals.csv.
    """
    if period.day != 1:
        raise ValueError(f"period must be the first day of a month, got {period}")
    if subscriptions < tenants:
        raise ValueError("need at least one subscription per tenant")
    rng = random.Random(seed)
    period_end = _next_month(period)
    previous = _prev_month(period)
    countries = [k for k, (cur, _) in COUNTRIES.items() if cur in currencies]

    tenant_rows = []
    for n in range(1, tenants + 1):
        country = countries[(n - 1) % len(countries)]
        tenant_rows.append(
            {
                "tenant_id": f"t-{n:04d}",
                "name": f"Tenant {n:04d} Ltd",
                "country": country,
                "currency": COUNTRIES[country][0],
                "billing_email": f"billing+{n:04d}@tenant{n:04d}.example",
            }
        )

    plans, components, tiers = _plans(list(currencies))
    sub_rows: list[dict[str, str]] = []
    sub_ids: list[tuple[str, str]] = []  # (subscription_id, tenant_id)
    for n in range(subscriptions):
        tenant = tenant_rows[n % tenants]
        cur = tenant["currency"].lower()
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        sub_ids.append((sid, tenant["tenant_id"]))
        plan = rng.choice(["starter", "pro", "enterprise"])
        case = n if n < 6 else rng.choice([0, 1, 2, 3, 4, 5, 5, 5, 5, 5])
        start, end = previous + timedelta(days=rng.randrange(0, 20)), None
        second: tuple[date, str] | None = None
        if case == 0:  # starts on the 15th of the month
            start = period + timedelta(days=14)
        elif case == 1:  # ends mid-month
            end = period + timedelta(days=rng.randrange(5, 25))
        elif case == 2:  # plan change mid-month
            second = (period + timedelta(days=rng.randrange(5, 25)), "pro" if plan != "pro" else "enterprise")
        elif case == 3:  # starts mid-month and ends before the month is out
            start = period + timedelta(days=rng.randrange(1, 10))
            end = start + timedelta(days=rng.randrange(3, 15))
        elif case == 4:  # starts on the first day of the month
            start = period
        if second is None:
            sub_rows.append(
                {
                    "subscription_id": sid,
                    "tenant_id": tenant["tenant_id"],
                    "plan_id": f"{plan}-{cur}",
                    "started_at": _ts(start),
                    "ended_at": _ts(end) if end else "",
                }
            )
        else:
            sub_rows.append(
                {
                    "subscription_id": sid,
                    "tenant_id": tenant["tenant_id"],
                    "plan_id": f"{plan}-{cur}",
                    "started_at": _ts(start),
                    "ended_at": _ts(second[0]),
                }
            )
            sub_rows.append(
                {
                    "subscription_id": sid,
                    "tenant_id": tenant["tenant_id"],
                    "plan_id": f"{second[1]}-{cur}",
                    "started_at": _ts(second[0]),
                    "ended_at": "",
                }
            )
        assert end is None or end < period_end

    quota_rows = []
    for n, (sid, _) in enumerate(sub_ids):
        if n % 3 == 0:
            tenant_cur = next(t["currency"] for t in tenant_rows if t["tenant_id"] == sub_ids[n][1])
            quota_rows.append(
                {
                    "subscription_id": sid,
                    "event_type": "llm.completion",
                    "limit_value": "2000000",
                    "period": "month",
                    "action": "allow_with_overage",
                    "overage_unit_price": _money(Decimal("0.00003"), tenant_cur),
                }
            )
        if n % 4 == 1:
            quota_rows.append(
                {
                    "subscription_id": sid,
                    "event_type": "api.request",
                    "limit_value": "20000",
                    "period": "month",
                    "action": "block",
                    "overage_unit_price": "",
                }
            )

    # Every dated row of the catalog starts with the year before the period's: valid for any period
    # asked for (subscriptions start in the previous month at the earliest).
    since = date(period.year - 1, 1, 1).isoformat()
    rate_change = period + timedelta(days=15)
    tax_rows = []
    for country in countries:
        rate = COUNTRIES[country][1]
        if country == "DE":
            tax_rows.append({"country": "DE", "rate": "0.16", "valid_from": since, "valid_to": rate_change.isoformat()})
            tax_rows.append({"country": "DE", "rate": rate, "valid_from": rate_change.isoformat(), "valid_to": ""})
        else:
            tax_rows.append({"country": country, "rate": rate, "valid_from": since, "valid_to": ""})

    credit_rows = [
        {
            "credit_id": "CR-0001",
            "tenant_id": tenant_rows[0]["tenant_id"],
            "amount": _fee(Decimal(50), tenant_rows[0]["currency"]),
            "currency": tenant_rows[0]["currency"],
            "reason": "service outage goodwill",
            "created_by": "finance@meterline.example",
            "created_at": _ts(previous + timedelta(days=3)),
        },
        {
            "credit_id": "CR-0002",
            "tenant_id": tenant_rows[1 % tenants]["tenant_id"],
            "amount": _fee(Decimal(100000), tenant_rows[1 % tenants]["currency"]),
            "currency": tenant_rows[1 % tenants]["currency"],
            "reason": "migration incentive (larger than any invoice)",
            "created_by": "finance@meterline.example",
            "created_at": _ts(period + timedelta(days=2)),
        },
    ]

    rule_rows = [
        {
            "rule_version": "1",
            "service": service,
            "method": method,
            "driver_metric": driver,
            "valid_from": since,
            "valid_to": "",
        }
        for service, method, driver in ALLOCATION_RULES
    ]

    # Monthly budgets: the first three tenants (their currency; the first with three thresholds)
    # and the two biggest services (internal cost, USD).
    budget_rows = [
        {
            "budget_id": f"budget-{t['tenant_id']}",
            "scope_type": "tenant",
            "scope_id": t["tenant_id"],
            "period": "month",
            "amount": _fee(Decimal(amount), t["currency"]),
            "currency": t["currency"],
            "thresholds": thresholds,
        }
        for t, amount, thresholds in zip(
            tenant_rows[:3], (2000, 500, 10000), ("50|80|100", "80|100", "80|100"), strict=False
        )
    ] + [
        {
            "budget_id": f"budget-{service.lower()}",
            "scope_type": "service",
            "scope_id": service,
            "period": "month",
            "amount": _fee(Decimal(amount), "USD"),
            "currency": "USD",
            "thresholds": "80|100",
        }
        for service, amount in (("AmazonEC2", 5000), ("AmazonS3", 1500))
    ]

    files: dict[str, list[dict[str, str]]] = {
        "tenants.csv": tenant_rows,
        "plans.csv": plans,
        "subscriptions.csv": sub_rows,
        "metrics.csv": [dict(m) for m in METRICS],
        "price_components.csv": components,
        "price_tiers.csv": tiers,
        "quotas.csv": quota_rows,
        "tax_rates.csv": tax_rows,
        "credits.csv": credit_rows,
        "allocation_rules.csv": rule_rows,
        "budgets.csv": budget_rows,
    }
    if aws_invoice_totals:
        files["aws_invoice_totals.csv"] = [
            {"billing_period": p, "invoice_id": f"AWS-{p.replace('-', '')}", "total": format(t, "f"), "currency": c}
            for p, (t, c) in sorted(aws_invoice_totals.items())
        ]
    zone = Zone(landing_url)
    for name, rows in files.items():
        zone.write_bytes(f"catalog/{name}", to_csv(rows))
    return GeneratedCatalog(landing_url=landing_url, period=period, files=files)


def to_csv(rows: list[dict[str, str]]) -> bytes:
    """CSV bytes with a header row; a file with no rows still has its header."""
    if not rows:
        return b""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
