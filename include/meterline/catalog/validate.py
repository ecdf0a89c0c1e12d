"""Parse and check the catalog files (docs/catalog.md) before anything is loaded.

Every problem is collected, not just the first: finance fixes an export in one round trip. A
problem names the file, the line (header = 1) and the field.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# The currencies the warehouse can invoice in: dbt_project/seeds/currencies.csv is the source of truth.
from meterline.config import project_root


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = (
            self.file + (f", line {self.line}" if self.line else "") + (f", field {self.field}" if self.field else "")
        )
        return f"{where}: {self.reason}"


class CatalogError(Exception):
    """The catalog was refused; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"catalog refused, {len(problems)} problem(s):\n  {shown}{more}")


@dataclass(frozen=True)
class Column:
    name: str
    parse: Callable[[str], Any]
    required: bool = True
    default: Any = None


def _text(v: str) -> str:
    return v


def _upper_code(length: int) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if not re.fullmatch(rf"[A-Za-z]{{{length}}}", v):
            raise ValueError(f"not a {length}-letter code: {v!r}")
        return v.upper()

    return parse


def _decimal(v: str) -> Decimal:
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", v):
        raise ValueError(f"not a plain decimal: {v!r}")
    try:
        return Decimal(v)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal: {v!r}") from exc


def _non_negative(v: str) -> Decimal:
    d = _decimal(v)
    if d < 0:
        raise ValueError(f"must not be negative: {v}")
    return d


def _positive(v: str) -> Decimal:
    d = _decimal(v)
    if d <= 0:
        raise ValueError(f"must be positive: {v}")
    return d


def _int(v: str) -> int:
    if not re.fullmatch(r"\d+", v):
        raise ValueError(f"not a whole number: {v!r}")
    return int(v)


def _uuid(v: str) -> uuid.UUID:
    try:
        return uuid.UUID(v)
    except ValueError as exc:
        raise ValueError(f"not a uuid: {v!r}") from exc


def _date(v: str) -> date:
    try:
        return date.fromisoformat(v) if len(v) == 10 else _bad_date(v)
    except ValueError as exc:
        raise ValueError(f"not a date (YYYY-MM-DD): {v!r}") from exc


def _bad_date(v: str) -> date:
    raise ValueError(v)


def _timestamp(v: str) -> datetime:
    try:
        ts = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 timestamp: {v!r}") from exc
    if ts.tzinfo is None:
        raise ValueError(f"timestamp without a time zone (UTC expected, e.g. 2025-03-15T00:00:00Z): {v!r}")
    return ts.astimezone(UTC)


def _enum(*values: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if v not in values:
            raise ValueError(f"unknown value {v!r} (expected one of {', '.join(values)})")
        return v

    return parse


def _thresholds(v: str) -> list[Decimal]:
    """Alert thresholds in percent of the amount, `|`-separated (`80|100`): positive, no repeats."""
    values = [_positive(t.strip()) for t in v.split("|")]
    if len(set(values)) != len(values):
        raise ValueError(f"a threshold is repeated: {v!r}")
    return sorted(values)


def _period(v: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", v):
        raise ValueError(f"not a billing period (YYYY-MM): {v!r}")
    return v


# File -> (table, key columns, columns in the raw table's order).
SCHEMAS: dict[str, tuple[str, tuple[str, ...], list[Column]]] = {
    "tenants.csv": (
        "catalog_tenants",
        ("tenant_id",),
        [
            Column("tenant_id", _text),
            Column("name", _text),
            Column("country", _upper_code(2)),
            Column("currency", _upper_code(3)),
            Column("billing_email", _text, required=False),
            # What the invoices print to address the tenant; optional columns (older exports lack them).
            Column("address", _text, required=False),
            Column("vat_id", _text, required=False),
        ],
    ),
    "plans.csv": (
        "catalog_plans",
        ("plan_id",),
        [
            Column("plan_id", _text),
            Column("name", _text),
            Column("currency", _upper_code(3)),
            Column("monthly_base_fee", _non_negative),
            Column("minimum_commitment", _non_negative, required=False, default=Decimal(0)),
        ],
    ),
    "subscriptions.csv": (
        "catalog_subscriptions",
        ("subscription_id", "started_at"),
        [
            Column("subscription_id", _uuid),
            Column("tenant_id", _text),
            Column("plan_id", _text),
            Column("started_at", _timestamp),
            Column("ended_at", _timestamp, required=False),
        ],
    ),
    "metrics.csv": (
        "catalog_metrics",
        ("metric_code",),
        [
            Column("metric_code", _text),
            Column("event_type", _text),
            Column("aggregation", _enum("count", "sum", "max")),
            Column("property", _text, required=False),
            Column("unit", _text),
        ],
    ),
    "price_components.csv": (
        "catalog_price_components",
        ("plan_id", "metric_code"),
        [
            Column("plan_id", _text),
            Column("metric_code", _text),
            Column("model", _enum("per_unit", "graduated", "volume", "package")),
            Column("included_units", _non_negative, required=False, default=Decimal(0)),
            Column("unit_price", _non_negative, required=False),
            Column("package_size", _positive, required=False),
        ],
    ),
    "price_tiers.csv": (
        "catalog_price_tiers",
        ("plan_id", "metric_code", "tier"),
        [
            Column("plan_id", _text),
            Column("metric_code", _text),
            Column("tier", _int),
            Column("up_to", _positive, required=False),
            Column("unit_price", _non_negative),
            Column("flat_fee", _non_negative, required=False, default=Decimal(0)),
        ],
    ),
    "quotas.csv": (
        "catalog_quotas",
        ("subscription_id", "event_type"),
        [
            Column("subscription_id", _uuid),
            Column("event_type", _text),
            Column("limit_value", _non_negative),
            Column("period", _enum("month")),
            Column("action", _enum("block", "allow_with_overage")),
            Column("overage_unit_price", _non_negative, required=False),
        ],
    ),
    "tax_rates.csv": (
        "catalog_tax_rates",
        ("country", "valid_from"),
        [
            Column("country", _upper_code(2)),
            Column("rate", _non_negative),
            Column("valid_from", _date),
            Column("valid_to", _date, required=False),
        ],
    ),
    "credits.csv": (
        "catalog_credits",
        ("credit_id",),
        [
            Column("credit_id", _text),
            Column("tenant_id", _text),
            Column("amount", _positive),
            Column("currency", _upper_code(3)),
            Column("reason", _text),
            Column("created_by", _text),
            Column("created_at", _timestamp),
        ],
    ),
    "allocation_rules.csv": (
        "catalog_allocation_rules",
        ("rule_version", "service"),
        [
            Column("rule_version", _int),
            Column("service", _text),
            Column("method", _enum("tag", "usage_share", "even", "unallocated")),
            Column("driver_metric", _text, required=False),
            Column("valid_from", _date),
            Column("valid_to", _date, required=False),
        ],
    ),
    "aws_invoice_totals.csv": (
        "catalog_aws_invoice_totals",
        ("billing_period",),
        [
            Column("billing_period", _period),
            Column("invoice_id", _text, required=False),
            Column("total", _non_negative),
            Column("currency", _upper_code(3)),
        ],
    ),
    "budgets.csv": (
        "catalog_budgets",
        ("budget_id",),
        [
            Column("budget_id", _text),
            Column("scope_type", _enum("tenant", "service")),
            Column("scope_id", _text),
            Column("period", _enum("month")),
            Column("amount", _positive),
            Column("currency", _upper_code(3)),
            Column("thresholds", _thresholds),
        ],
    ),
}
# Optional files replace their table only when present in the export.
OPTIONAL_FILES = frozenset({"aws_invoice_totals.csv", "budgets.csv"})


@dataclass
class ParsedFile:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the CSV line of each row (header = 1)
    # Keys of rows refused for a bad field: references to them are not reported again.
    refused_keys: set[tuple[str, ...]] = field(default_factory=set)


def known_currencies() -> set[str]:
    seed = project_root() / "dbt_project" / "seeds" / "currencies.csv"
    with seed.open(newline="") as f:
        return {row["currency"] for row in csv.DictReader(f)}


def parse_file(name: str, data: bytes, problems: list[Problem]) -> ParsedFile:
    """Rows of one file, typed; a row with any bad field is reported and left out."""
    _, key, columns = SCHEMAS[name]
    parsed = ParsedFile(name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, None, None, f"not UTF-8: {exc}"))
        return parsed
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        problems.append(Problem(name, 1, None, "empty file: a header row is required"))
        return parsed
    header = [h.strip() for h in header]
    expected = [c.name for c in columns]
    missing = [c.name for c in columns if c.name not in header and c.required]
    unknown = [h for h in header if h not in expected]
    if missing or unknown:
        reasons = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        )
        problems.append(Problem(name, 1, None, "; ".join(reasons) + f" (expected {', '.join(expected)})"))
        return parsed
    seen: dict[tuple, int] = {}
    for line_no, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(Problem(name, line_no, None, f"{len(values)} fields, the header has {len(header)}"))
            continue
        raw = {h: v.strip() for h, v in zip(header, values, strict=True)}
        row: dict[str, Any] = {}
        ok = True
        for col in columns:
            value = raw.get(col.name, "")
            if value == "":
                if col.required:
                    problems.append(Problem(name, line_no, col.name, "required, but empty"))
                    ok = False
                row[col.name] = col.default
                continue
            try:
                row[col.name] = col.parse(value)
            except ValueError as exc:
                problems.append(Problem(name, line_no, col.name, str(exc)))
                ok = False
        if not ok:
            parsed.refused_keys.add(tuple(raw.get(k, "") for k in key))
            continue
        k = tuple(row[c] for c in key)
        if k in seen:
            problems.append(
                Problem(name, line_no, ",".join(key), f"duplicate key {_show(k)} (first on line {seen[k]})")
            )
            continue
        seen[k] = line_no
        parsed.rows.append(row)
        parsed.lines.append(line_no)
    return parsed


def _show(key: tuple) -> str:
    return "/".join(str(k) for k in key)


def check_rules(files: dict[str, ParsedFile], problems: list[Problem], currencies: set[str]) -> None:
    """The rules across rows and files: references, tiers, validity overlaps, model fields."""

    def each(name: str):
        f = files.get(name)
        return zip(f.lines, f.rows, strict=True) if f else iter(())

    def refused(name: str) -> dict[str, dict]:
        f = files.get(name)
        return {key[0]: {} for key in f.refused_keys} if f else {}

    tenants = refused("tenants.csv") | {r["tenant_id"]: r for _, r in each("tenants.csv")}
    plans = refused("plans.csv") | {r["plan_id"]: r for _, r in each("plans.csv")}
    metrics = refused("metrics.csv") | {r["metric_code"]: r for _, r in each("metrics.csv")}
    event_types = {r["event_type"] for r in metrics.values() if r}

    for file, col in (
        ("tenants.csv", "currency"),
        ("plans.csv", "currency"),
        ("credits.csv", "currency"),
        ("aws_invoice_totals.csv", "currency"),
        ("budgets.csv", "currency"),
    ):
        for line, r in each(file):
            if r[col] not in currencies:
                problems.append(Problem(file, line, col, f"unknown currency {r[col]} (not in seeds/currencies.csv)"))
    for line, r in each("metrics.csv"):
        if r["aggregation"] in ("sum", "max") and not r["property"]:
            problems.append(Problem("metrics.csv", line, "property", f"required for aggregation {r['aggregation']}"))

    subs_by_id: dict[uuid.UUID, list[tuple[int, dict]]] = defaultdict(list)
    for line, r in each("subscriptions.csv"):
        if r["tenant_id"] not in tenants:
            problems.append(Problem("subscriptions.csv", line, "tenant_id", f"unknown tenant {r['tenant_id']}"))
        if r["plan_id"] not in plans:
            problems.append(Problem("subscriptions.csv", line, "plan_id", f"unknown plan {r['plan_id']}"))
        if r["ended_at"] is not None and r["ended_at"] <= r["started_at"]:
            problems.append(Problem("subscriptions.csv", line, "ended_at", "must be after started_at"))
            continue
        subs_by_id[r["subscription_id"]].append((line, r))
    for rows in subs_by_id.values():
        rows.sort(key=lambda lr: lr[1]["started_at"])
        for (_, a), (line_b, b) in itertools.pairwise(rows):
            if a["ended_at"] is None or a["ended_at"] > b["started_at"]:
                problems.append(
                    Problem(
                        "subscriptions.csv",
                        line_b,
                        "started_at",
                        f"overlaps the row of subscription {b['subscription_id']} "
                        f"starting {a['started_at']:%Y-%m-%dT%H:%M:%SZ}",
                    )
                )
            if a["tenant_id"] != b["tenant_id"]:
                problems.append(
                    Problem(
                        "subscriptions.csv", line_b, "tenant_id", "a subscription belongs to one tenant in all its rows"
                    )
                )

    components: dict[tuple[str, str], dict] = {}
    for line, r in each("price_components.csv"):
        if r["plan_id"] not in plans:
            problems.append(Problem("price_components.csv", line, "plan_id", f"unknown plan {r['plan_id']}"))
        if r["metric_code"] not in metrics:
            problems.append(Problem("price_components.csv", line, "metric_code", f"unknown metric {r['metric_code']}"))
        if r["model"] in ("per_unit", "package") and r["unit_price"] is None:
            problems.append(Problem("price_components.csv", line, "unit_price", f"required for model {r['model']}"))
        if r["model"] == "package" and r["package_size"] is None:
            problems.append(Problem("price_components.csv", line, "package_size", "required for model package"))
        components[(r["plan_id"], r["metric_code"])] = r | {"_line": line}

    tiers: dict[tuple[str, str], list[tuple[int, dict]]] = defaultdict(list)
    for line, r in each("price_tiers.csv"):
        comp = components.get((r["plan_id"], r["metric_code"]))
        if comp is None:
            problems.append(
                Problem(
                    "price_tiers.csv",
                    line,
                    "plan_id,metric_code",
                    f"no price component for plan {r['plan_id']} and metric {r['metric_code']}",
                )
            )
        elif comp["model"] not in ("graduated", "volume"):
            problems.append(
                Problem(
                    "price_tiers.csv",
                    line,
                    "tier",
                    f"tiers apply to graduated and volume only (model is {comp['model']})",
                )
            )
        tiers[(r["plan_id"], r["metric_code"])].append((line, r))
    refused_tiers = {k[:2] for k in files["price_tiers.csv"].refused_keys} if "price_tiers.csv" in files else set()
    for (plan, metric), rows in tiers.items():
        if (plan, metric) in refused_tiers:
            continue  # a refused tier is reported already; the rest of its ladder cannot be judged
        rows.sort(key=lambda lr: lr[1]["tier"])
        previous: Decimal | None = Decimal(0)
        for n, (line, r) in enumerate(rows, start=1):
            if r["tier"] != n:
                problems.append(
                    Problem(
                        "price_tiers.csv",
                        line,
                        "tier",
                        f"tiers of {plan}/{metric} must be numbered 1, 2, ... without gaps",
                    )
                )
            if previous is None:
                problems.append(
                    Problem(
                        "price_tiers.csv",
                        line,
                        "up_to",
                        f"tier {r['tier']} of {plan}/{metric} comes after an unbounded tier",
                    )
                )
            elif r["up_to"] is not None and r["up_to"] <= previous:
                problems.append(
                    Problem(
                        "price_tiers.csv",
                        line,
                        "up_to",
                        f"overlapping tiers of {plan}/{metric}: up_to {r['up_to']} is not above "
                        f"the previous tier's bound {previous}",
                    )
                )
            previous = r["up_to"] if previous is not None else None
    for (plan, metric), comp in components.items():
        if comp["model"] in ("graduated", "volume") and not tiers.get((plan, metric)):
            problems.append(
                Problem(
                    "price_components.csv",
                    comp["_line"],
                    "model",
                    f"model {comp['model']} of {plan}/{metric} has no rows in price_tiers.csv",
                )
            )

    subscription_ids = set(subs_by_id)
    for line, r in each("quotas.csv"):
        if r["subscription_id"] not in subscription_ids:
            problems.append(
                Problem("quotas.csv", line, "subscription_id", f"unknown subscription {r['subscription_id']}")
            )
        if r["event_type"] not in event_types:
            problems.append(
                Problem("quotas.csv", line, "event_type", f"unknown event type {r['event_type']} (no metric)")
            )
        if r["action"] == "allow_with_overage" and r["overage_unit_price"] is None:
            problems.append(Problem("quotas.csv", line, "overage_unit_price", "required for action allow_with_overage"))

    for file, key in (("tax_rates.csv", "country"), ("allocation_rules.csv", "service")):
        spans: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        for line, r in each(file):
            if r["valid_to"] is not None and r["valid_to"] <= r["valid_from"]:
                problems.append(Problem(file, line, "valid_to", "must be after valid_from"))
                continue
            spans[r[key]].append((line, r))
        for value, rows in spans.items():
            rows.sort(key=lambda lr: (lr[1]["valid_from"], lr[0]))
            for (line_a, a), (line_b, b) in itertools.pairwise(rows):
                if a["valid_to"] is None or a["valid_to"] > b["valid_from"]:
                    problems.append(
                        Problem(
                            file,
                            line_b,
                            "valid_from",
                            f"overlapping validity for {key} {value}: {b['valid_from']} is before "
                            f"the end of the period on line {line_a}",
                        )
                    )

    for line, r in each("credits.csv"):
        if r["tenant_id"] not in tenants:
            problems.append(Problem("credits.csv", line, "tenant_id", f"unknown tenant {r['tenant_id']}"))
    for line, r in each("budgets.csv"):
        if r["scope_type"] == "tenant" and r["scope_id"] not in tenants:
            problems.append(Problem("budgets.csv", line, "scope_id", f"unknown tenant {r['scope_id']}"))
    for line, r in each("allocation_rules.csv"):
        if r["method"] == "usage_share":
            if not r["driver_metric"]:
                problems.append(
                    Problem("allocation_rules.csv", line, "driver_metric", "required for method usage_share")
                )
            elif r["driver_metric"] not in metrics:
                problems.append(
                    Problem("allocation_rules.csv", line, "driver_metric", f"unknown metric {r['driver_metric']}")
                )


def validate(files: dict[str, bytes]) -> tuple[dict[str, ParsedFile], list[Problem]]:
    """Parse and check every file; returns the parsed files and every problem found."""
    problems: list[Problem] = []
    for name in SCHEMAS:
        if name not in files and name not in OPTIONAL_FILES:
            problems.append(Problem(name, None, None, "file missing from the export"))
    parsed = {name: parse_file(name, data, problems) for name, data in files.items() if name in SCHEMAS}
    check_rules(parsed, problems, known_currencies())
    return parsed, problems
