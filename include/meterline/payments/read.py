"""Reading one processor export (CSV or JSON) into validated payment rows and rejected lines.

CSV: a header with at least `payment_id, invoice_number, amount, currency, status, paid_at`;
line numbers count the header as line 1. JSON: an object with a `payments` array (or a bare
array) of objects with the same fields; the "line" of a record is its position, from 1.
A file that cannot be parsed at all raises `UnreadableExport`; a bad row is a `Rejected` naming
its line and reason, and the rest of the file still loads.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from meterline.config import project_root
from meterline.money import minor_units_table
from meterline.payments import FIELDS, STATUSES


class UnreadableExport(ValueError):
    """The file is not a payment export at all (not CSV/JSON, or required columns missing)."""


@dataclass(frozen=True)
class Payment:
    payment_id: str
    invoice_number: str
    amount: Decimal
    currency: str
    status: str
    paid_at: datetime
    amount_usd: Decimal
    line_no: int

    @property
    def key(self) -> tuple[str, str]:
        return self.payment_id, self.status


@dataclass(frozen=True)
class Rejected:
    line_no: int
    reason: str
    raw: str


@cache
def usd_per_unit() -> dict[str, Decimal]:
    """Reference rates to USD, from the currencies seed dbt uses too."""
    with open(project_root() / "dbt_project" / "seeds" / "currencies.csv", newline="") as handle:
        return {row["currency"]: Decimal(row["usd_per_unit"]) for row in csv.DictReader(handle)}


def export_format(path: str) -> str:
    return "json" if path.endswith(".json") else "csv"


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    # A processor timestamp without an offset is UTC, as every time in the warehouse.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def validate_record(record: dict[str, Any], line_no: int) -> Payment | Rejected:
    raw = json.dumps(record, default=str, sort_keys=True)
    values = {name: "" if record.get(name) is None else str(record.get(name)).strip() for name in FIELDS}
    missing = [name for name in FIELDS if not values[name]]
    if missing:
        return Rejected(line_no, f"missing {', '.join(missing)}", raw)
    currency = values["currency"].upper()
    if currency not in minor_units_table():
        return Rejected(line_no, f"unknown currency {values['currency']!r}", raw)
    if values["status"] not in STATUSES:
        return Rejected(line_no, f"unknown status {values['status']!r} (succeeded, failed or refunded)", raw)
    try:
        amount = Decimal(values["amount"])
    except InvalidOperation:
        return Rejected(line_no, f"amount {values['amount']!r} is not a number", raw)
    if not amount.is_finite() or amount < 0:
        return Rejected(line_no, f"amount {values['amount']!r} must be a non-negative number", raw)
    digits = minor_units_table()[currency]
    if amount != amount.quantize(Decimal(1).scaleb(-digits)):
        return Rejected(line_no, f"amount {values['amount']} has more than {digits} decimals for {currency}", raw)
    try:
        paid_at = _timestamp(values["paid_at"])
    except ValueError:
        return Rejected(line_no, f"paid_at {values['paid_at']!r} is not an ISO-8601 timestamp", raw)
    amount_usd = (amount * usd_per_unit()[currency]).quantize(Decimal("0.01"))
    return Payment(
        payment_id=values["payment_id"],
        invoice_number=values["invoice_number"],
        amount=amount,
        currency=currency,
        status=values["status"],
        paid_at=paid_at,
        amount_usd=amount_usd,
        line_no=line_no,
    )


def _csv_records(path: str, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableExport(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [name for name in FIELDS if name not in header]
    if missing:
        raise UnreadableExport(f"{path}: line 1: header lacks {', '.join(missing)}")
    # DictReader's line_num is the physical line just read (header = line 1).
    return [(reader.line_num, row) for row in reader]


def _json_records(path: str, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableExport(f"{path}: not JSON ({exc})") from exc
    records = document.get("payments") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise UnreadableExport(f"{path}: expected a 'payments' array")
    return [(n, r if isinstance(r, dict) else {"_value": r}) for n, r in enumerate(records, start=1)]


def read_export(path: str, data: bytes) -> tuple[list[Payment], list[Rejected]]:
    """Parse and validate one export; raises UnreadableExport when the file itself is unusable."""
    records = _json_records(path, data) if export_format(path) == "json" else _csv_records(path, data)
    good: list[Payment] = []
    bad: list[Rejected] = []
    for line_no, record in records:
        result = validate_record(record, line_no)
        (good if isinstance(result, Payment) else bad).append(result)
    return good, bad
