"""A billing period: one UTC calendar month, named `YYYY-MM`."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from meterline.errors import InputError

_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    start: date  # the first day of the month
    end: date  # the first day of the next month (exclusive)

    @classmethod
    def parse(cls, value: str | date | Period) -> Period:
        if isinstance(value, Period):
            return value
        if isinstance(value, date):
            first = value.replace(day=1)
        else:
            match = _PATTERN.match(value.strip())
            if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
                raise InputError(f"period {value!r} is not a month written YYYY-MM (e.g. 2025-03)")
            first = date(int(match.group(1)), int(match.group(2)), 1)
        following = date(first.year + 1, 1, 1) if first.month == 12 else date(first.year, first.month + 1, 1)
        return cls(first, following)

    @property
    def closes_at(self) -> datetime:
        """The instant the month ends (the next month's first midnight, UTC): what its close is
        as of (METERLINE_AS_OF, macros/as_of.sql), so re-running a close gives the same drafts whatever the day."""
        return datetime.combine(self.end, time(), UTC)

    @property
    def label(self) -> str:
        return self.start.strftime("%Y-%m")

    def draft_id(self, subscription_id: object) -> str:
        """marts.invoice_header.invoice_id: `D-YYYYMM-<subscription_id>`."""
        return f"D-{self.start.strftime('%Y%m')}-{subscription_id}"

    def __str__(self) -> str:
        return self.label


def month_arg(value: str) -> date:
    """argparse type for a month on the command line: YYYY-MM, or its first day YYYY-MM-01."""
    try:
        return Period.parse(value.removesuffix("-01") if len(value) == 10 else value).start
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
