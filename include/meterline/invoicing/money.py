"""Currency minor units and half-up rounding, from the same currencies seed dbt uses."""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from meterline.config import project_root


@cache
def minor_units_table() -> dict[str, int]:
    with open(project_root() / "dbt_project" / "seeds" / "currencies.csv", newline="") as handle:
        return {row["currency"]: int(row["minor_units"]) for row in csv.DictReader(handle)}


def minor_units(currency: str) -> int:
    try:
        return minor_units_table()[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}: not in dbt_project/seeds/currencies.csv") from None


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit (2 for USD/EUR, 0 for JPY)."""
    return Decimal(amount).quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    digits = minor_units(currency)
    return f"{round_money(amount, currency):,.{digits}f} {currency}"
