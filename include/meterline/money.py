"""Currency minor units and half-up rounding, from the same currencies seed dbt uses; and the
range of amounts the warehouse holds exactly."""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal, DefaultContext, InvalidOperation
from functools import cache

from meterline.config import project_root
from meterline.errors import InputError

# The range of exact money, written once. Python's Decimal keeps AMOUNT_DIGITS (28) significant
# digits, and the emitter, corrections and payment matching round and compare amounts with it
# (PostgreSQL's numeric keeps more); unit prices and costs keep PRICE_SCALE (6) decimals
# (DESIGN.md, "Money and time"). An amount is exact while its integer digits and 6 decimals fit:
# below MAX_AMOUNT = 10**22. Event quantities are bounded from it (events.validate.QUANTITY_MAX).
AMOUNT_DIGITS = DefaultContext.prec
PRICE_SCALE = 6
MAX_AMOUNT = Decimal(10) ** (AMOUNT_DIGITS - PRICE_SCALE)


@cache
def minor_units_table() -> dict[str, int]:
    with open(project_root() / "dbt_project" / "seeds" / "currencies.csv", newline="") as handle:
        return {row["currency"]: int(row["minor_units"]) for row in csv.DictReader(handle)}


def minor_units(currency: str) -> int:
    try:
        return minor_units_table()[currency]
    except KeyError:
        raise InputError(f"unknown currency {currency!r}: not in dbt_project/seeds/currencies.csv") from None


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit (2 for USD/EUR, 0 for JPY)."""
    return Decimal(amount).quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def parse_amount(text: str | Decimal, what: str = "amount") -> Decimal:
    """An operator's amount: a finite number below MAX_AMOUNT, or an InputError naming it."""
    try:
        amount = Decimal(str(text).strip())
    except InvalidOperation:
        raise InputError(f"{what} {text!r} is not a number") from None
    if not amount.is_finite():
        raise InputError(f"{what} {text!r} is not a finite number")
    if abs(amount) >= MAX_AMOUNT:
        raise InputError(f"{what} {text!r} is beyond what the warehouse holds exactly (below {MAX_AMOUNT:.0e})")
    return amount


def format_amount(amount: Decimal, currency: str) -> str:
    """The amount rounded to the currency's minor unit, with thousands separators: `1,234.50`."""
    return f"{round_money(amount, currency):,.{minor_units(currency)}f}"


def format_money(amount: Decimal, currency: str) -> str:
    return f"{format_amount(amount, currency)} {currency}"
