"""A month of processor exports for the issued invoices of a period, with realistic noise.

Writes, under `payments/<YYYY-MM of the payments>/`:
- `processor-<day 3>.csv`: the first batch: an exact payment for most invoices, the first part
  of a partial payment, a failed attempt, a payment later refunded, a payment one minor unit
  short (a cent; a yen for JPY);
- `processor-<day 8>.json`: the second batch: the rest of the partial payment, the attempt that
  failed now succeeding (same payment_id), the refund, a payment for an unknown invoice number;
- `processor-<day 3>-resent.csv`: the first batch delivered again, byte for byte.

The live issued invoices of the period are taken in invoice-number order and given the noise
cases in that order (partial, failed-then-succeeded, refunded, a cent short), the rest paid
exactly. `Generated.expected` says what loading should give.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from meterline import warehouse
from meterline.landing import landing
from meterline.money import minor_units
from meterline.payments import FIELDS, PREFIX
from meterline.period import Period

NOISE = ("partial", "failed_then_succeeded", "refunded", "cent_short")


@dataclass
class Generated:
    files: list[str]
    # invoice_number -> the noise case it got ("exact" for a plain payment)
    cases: dict[str, str] = field(default_factory=dict)
    unknown_invoice_number: str = ""
    rows: int = 0


def _row(payment_id: str, invoice_number: str, amount: Decimal, currency: str, status: str, at: datetime) -> dict:
    return {
        "payment_id": payment_id,
        "invoice_number": invoice_number,
        "amount": str(amount),
        "currency": currency,
        "status": status,
        "paid_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def generate_payments(
    conninfo: str | None, landing_url: str | None, period: str | date, *, seed: int = 11
) -> Generated:
    """Exports paying the live issued invoices of `period` (YYYY-MM), paid in the next month."""
    p = Period.parse(period)
    with warehouse.connect(conninfo or warehouse.url()) as conn:
        invoices = conn.execute(
            "select invoice_number, total, currency from billing.invoices"
            " where period_start = %s and status <> 'void' order by invoice_number",
            [p.start],
        ).fetchall()
    rng = random.Random(seed)
    month = p.end
    first_at = datetime(month.year, month.month, 3, 9, 0, tzinfo=UTC)
    second_at = datetime(month.year, month.month, 8, 9, 0, tzinfo=UTC)

    def pid() -> str:
        return f"py_{rng.getrandbits(64):016x}"

    def at(base: datetime) -> datetime:
        return base + timedelta(minutes=rng.randrange(0, 8 * 60))

    first: list[dict] = []
    second: list[dict] = []
    g = Generated(files=[])
    for n, (number, total, currency) in enumerate(invoices):
        total = Decimal(total)
        unit = Decimal(1).scaleb(-minor_units(currency))
        case = NOISE[n] if n < len(NOISE) else "exact"
        g.cases[number] = case
        if case == "partial":
            part = (total * Decimal("0.6")).quantize(unit)
            first.append(_row(pid(), number, part, currency, "succeeded", at(first_at)))
            second.append(_row(pid(), number, total - part, currency, "succeeded", at(second_at)))
        elif case == "failed_then_succeeded":
            payment_id = pid()
            first.append(_row(payment_id, number, total, currency, "failed", at(first_at)))
            second.append(_row(payment_id, number, total, currency, "succeeded", at(second_at)))
        elif case == "refunded":
            payment_id = pid()
            first.append(_row(payment_id, number, total, currency, "succeeded", at(first_at)))
            second.append(_row(payment_id, number, total, currency, "refunded", at(second_at)))
        elif case == "cent_short":
            first.append(_row(pid(), number, total - unit, currency, "succeeded", at(first_at)))
        else:
            first.append(_row(pid(), number, total, currency, "succeeded", at(first_at)))
    g.unknown_invoice_number = f"INV-{p.start.year}-999999"
    second.append(_row(pid(), g.unknown_invoice_number, Decimal("42.00"), "USD", "succeeded", at(second_at)))

    zone = landing(landing_url)
    folder = f"{PREFIX}/{month:%Y-%m}"
    first_bytes = _csv(first)
    second_bytes = json.dumps(
        {"export_id": f"exp_{second_at:%Y%m%d}", "generated_at": second_at.isoformat(), "payments": second},
        indent=1,
    ).encode()
    g.files = [
        zone.write_bytes(f"{folder}/processor-{first_at:%Y-%m-%d}.csv", first_bytes),
        zone.write_bytes(f"{folder}/processor-{second_at:%Y-%m-%d}.json", second_bytes),
        zone.write_bytes(f"{folder}/processor-{first_at:%Y-%m-%d}-resent.csv", first_bytes),
    ]
    g.rows = len(first) * 2 + len(second)
    return g
