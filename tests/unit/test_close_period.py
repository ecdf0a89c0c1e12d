"""Which month a close_billing_period run closes."""

import argparse
from datetime import UTC, date, datetime

import pytest

from meterline.close import resolve_period
from meterline.period import month_arg

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("logical_date", "period"),
    [
        (datetime(2026, 11, 1, 4, 0, tzinfo=UTC), "2026-10"),  # the scheduled run, 04:00 on the 1st
        (datetime(2026, 1, 1, 4, 0, tzinfo=UTC), "2025-12"),  # across the year
        (datetime(2026, 3, 31, 23, 59, tzinfo=UTC), "2026-02"),
        (date(2024, 3, 15), "2024-02"),  # a plain date
    ],
)
def test_the_default_period_is_the_month_before_the_run(logical_date, period):
    assert resolve_period(None, logical_date) == period


def test_the_period_param_wins_and_is_validated():
    assert resolve_period("2025-03", date(2026, 11, 1)) == "2025-03"
    with pytest.raises(ValueError, match="YYYY-MM"):
        resolve_period("2025-13", date(2026, 11, 1))


def test_a_month_on_the_command_line_is_yyyy_mm_or_its_first_day():
    assert month_arg("2026-10") == month_arg("2026-10-01") == date(2026, 10, 1)
    for bad in ("2026-13", "2026-10-15", "2026-1", "October"):
        with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM"):
            month_arg(bad)
