"""An independent pricing oracle: DESIGN.md's billing rules in plain Python and Decimal.

Written from the rules (DESIGN.md "Money and time", the draft-invoice notes in
dbt_project/models/marts/billing/), not from the SQL: the dbt invoices must equal it to the cent.
It walks each subscription month unit by unit in the most literal way; speed is not a goal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

MINOR_UNITS = {"JPY": 0, "KRW": 0}  # every other currency the generator uses has 2


@dataclass
class Line:
    kind: str
    metric_code: str | None
    quantity: Decimal
    amount: Decimal


@dataclass
class Invoice:
    invoice_id: str
    tenant_id: str
    currency: str
    period_start: date
    lines: list[Line] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    subtotal: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    total: Decimal = Decimal(0)

    @property
    def status(self) -> str:
        """Before issue; nothing to bill (no fee, no usage: total 0 and no line of value) is not
        issued while issue_zero_invoices is off, its default."""
        if self.errors:
            return "blocked"
        if self.total == 0 and not any(line.amount for line in self.lines):
            return "skipped"
        return "open"


def round_money(amount: Decimal, currency: str) -> Decimal:
    exponent = Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))
    return amount.quantize(exponent, rounding=ROUND_HALF_UP)


def _d(v: str | None) -> Decimal | None:
    return Decimal(v) if v not in (None, "") else None


def _ts(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None


def _month(d: date) -> date:
    return date(d.year, d.month, 1)


def _add_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def price_units(model: str, units: Decimal, component: dict, tiers: list[dict]) -> Decimal:
    """The unrounded charge for `units` billable units under one price model."""
    if units == 0:
        return Decimal(0)
    if model == "per_unit":
        return units * Decimal(component["unit_price"])
    if model == "package":
        packages = (units / Decimal(component["package_size"])).to_integral_value(rounding=ROUND_CEILING)
        return packages * Decimal(component["unit_price"])
    ordered = sorted(tiers, key=lambda t: int(t["tier"]))
    if model == "graduated":
        total, lower = Decimal(0), Decimal(0)
        for t in ordered:
            upper = _d(t["up_to"])
            in_tier = (units if upper is None else min(units, upper)) - lower
            if in_tier > 0:
                total += in_tier * Decimal(t["unit_price"]) + Decimal(t["flat_fee"] or 0)
            if upper is None or units <= upper:
                return total
            lower = upper
        raise PricingError("above the last price tier")
    if model == "volume":
        for t in ordered:
            upper = _d(t["up_to"])
            if upper is None or units <= upper:
                return units * Decimal(t["unit_price"]) + Decimal(t["flat_fee"] or 0)
        raise PricingError("above the last price tier")
    raise ValueError(model)


class PricingError(Exception):
    pass


def price_catalog(
    files: dict[str, list[dict[str, str]]],
    usage: list[tuple[str, str, datetime, Decimal]],
    *,
    through: date,
) -> dict[str, Invoice]:
    """Every draft invoice from each subscription's first month through `through` (a month start)."""
    tenants = {t["tenant_id"]: t for t in files["tenants.csv"]}
    plans = {p["plan_id"]: p for p in files["plans.csv"]}
    metrics = {m["metric_code"]: m for m in files["metrics.csv"]}
    components = {(c["plan_id"], c["metric_code"]): c for c in files["price_components.csv"]}
    tiers: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for t in files["price_tiers.csv"]:
        tiers[(t["plan_id"], t["metric_code"])].append(t)
    quotas = {(q["subscription_id"], q["event_type"]): q for q in files["quotas.csv"]}
    rows_by_sub: dict[str, list[dict]] = defaultdict(list)
    for s in files["subscriptions.csv"]:
        rows_by_sub[s["subscription_id"]].append(s)

    # usage per (subscription row, month, metric): the hourly quantities in that row's time span
    hourly: dict[str, list[tuple[str, datetime, Decimal]]] = defaultdict(list)
    for sid, metric, hour, qty in usage:
        hourly[sid].append((metric, hour, qty))

    invoices: dict[str, Invoice] = {}
    for sid, rows in rows_by_sub.items():
        rows.sort(key=lambda r: r["started_at"])
        first = _month(_ts(rows[0]["started_at"]).date())
        month = first
        while month <= through:
            nxt = _add_month(month)
            m_start, m_end = _midnight(month), _midnight(nxt)
            segments = []
            for r in rows:
                start, end = _ts(r["started_at"]), _ts(r["ended_at"])
                a, b = max(start, m_start), min(end or m_end, m_end)
                if b > a:
                    segments.append((r, a, b))
            if segments:
                tenant = tenants[segments[0][0]["tenant_id"]]
                inv = Invoice(f"D-{month:%Y%m}-{sid}", tenant["tenant_id"], tenant["currency"], month)
                _price_month(inv, sid, segments, month, nxt, plans, metrics, components, tiers, quotas, hourly[sid])
                _tax(inv, tenant, files["tax_rates.csv"], nxt - timedelta(days=1))
                invoices[inv.invoice_id] = inv
            month = nxt
    _apply_credits(invoices, files["credits.csv"])
    for inv in invoices.values():
        inv.subtotal = sum((ln.amount for ln in inv.lines if ln.kind != "credit"), Decimal(0))
        inv.credits = -sum((ln.amount for ln in inv.lines if ln.kind == "credit"), Decimal(0))
        rate = getattr(inv, "_rate", None)
        inv.tax = round_money(rate * (inv.subtotal - inv.credits), inv.currency) if rate is not None else Decimal(0)
        inv.total = inv.subtotal - inv.credits + inv.tax
    return invoices


def _price_month(inv, sid, segments, month, nxt, plans, metrics, components, tiers, quotas, usage_rows) -> None:
    days_in_month = (nxt - month).days
    cur = inv.currency
    usage_charged = Decimal(0)
    commitment = Decimal(0)
    consumed: dict[str, Decimal] = defaultdict(Decimal)  # quota consumed so far this month, per metric
    for row, a, b in segments:
        plan = plans[row["plan_id"]]
        if plan["currency"] != cur:
            inv.errors.append(f"plan {plan['plan_id']} currency {plan['currency']} differs from tenant's {cur}")
        days = (b.date() - a.date()).days
        fee = Decimal(plan["monthly_base_fee"])
        if fee > 0 and days > 0:
            inv.lines.append(Line("base_fee", None, Decimal(days), round_money(fee * days / days_in_month, cur)))
        commitment += Decimal(plan["minimum_commitment"] or 0) * days / days_in_month

        per_metric: dict[str, list[Decimal]] = defaultdict(list)
        for metric, hour, qty in usage_rows:
            if a <= hour < b:
                per_metric[metric].append(qty)
        for metric_code in sorted(per_metric):
            m = metrics[metric_code]
            values = per_metric[metric_code]
            quantity = max(values) if m["aggregation"] == "max" else sum(values, Decimal(0))
            if quantity == 0:
                continue
            quota = quotas.get((sid, m["event_type"]))
            priced_qty, over = quantity, Decimal(0)
            if quota:
                limit = Decimal(quota["limit_value"])
                room = limit if m["aggregation"] == "max" else max(Decimal(0), limit - consumed[metric_code])
                priced_qty = min(quantity, room)
                over = quantity - priced_qty
            consumed[metric_code] += quantity
            comp = components.get((row["plan_id"], metric_code))
            if comp is None:
                inv.errors.append(f"no price for {metric_code} on {row['plan_id']}")
                continue
            billable = max(Decimal(0), priced_qty - Decimal(comp["included_units"] or 0))
            try:
                amount = price_units(comp["model"], billable, comp, tiers[(row["plan_id"], metric_code)])
            except PricingError as exc:
                inv.errors.append(f"{metric_code}: {exc}")
                continue
            rounded = round_money(amount, cur)
            inv.lines.append(Line("usage", metric_code, billable, rounded))
            usage_charged += rounded
            if over > 0 and quota["action"] == "allow_with_overage":
                overage = round_money(over * Decimal(quota["overage_unit_price"]), cur)
                inv.lines.append(Line("overage", metric_code, over, overage))
                usage_charged += overage
    true_up = round_money(commitment - usage_charged, cur)
    if commitment > 0 and true_up > 0:
        inv.lines.append(Line("minimum_commit", None, Decimal(1), true_up))


def _tax(inv: Invoice, tenant: dict, rates: list[dict], tax_day: date) -> None:
    for r in rates:
        start = date.fromisoformat(r["valid_from"])
        end = date.fromisoformat(r["valid_to"]) if r["valid_to"] else None
        if r["country"] == tenant["country"] and start <= tax_day and (end is None or tax_day < end):
            inv._rate = Decimal(r["rate"])  # type: ignore[attr-defined]
            return
    inv.errors.append(f"no tax rate for {tenant['country']} on {tax_day}")


def _apply_credits(invoices: dict[str, Invoice], credits: list[dict]) -> None:
    """Walk each tenant's invoices in (period, subscription) order, spending its credit pool."""
    pool: dict[tuple[str, str], list[tuple[datetime, Decimal]]] = defaultdict(list)
    for c in credits:
        pool[(c["tenant_id"], c["currency"])].append(
            (_ts(c["created_at"]), round_money(Decimal(c["amount"]), c["currency"]))
        )
    spent: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    order = sorted(invoices.values(), key=lambda i: (i.tenant_id, i.currency, i.period_start, i.invoice_id[9:]))
    for inv in order:
        key = (inv.tenant_id, inv.currency)
        granted = sum(
            (amt for at, amt in pool.get(key, []) if at < _midnight(_add_month(inv.period_start))), Decimal(0)
        )
        subtotal = sum((ln.amount for ln in inv.lines), Decimal(0))
        use = min(subtotal, granted - spent[key])
        if use > 0:
            inv.lines.append(Line("credit", None, Decimal(1), -use))
            spent[key] += use
