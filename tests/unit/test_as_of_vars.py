"""The as-of instant handed to dbt (METERLINE_AS_OF): always UTC."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from meterline.cli import build_parser
from meterline.period import Period
from meterline.transform import as_of_env, as_of_instant

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "instant"),
    [
        (date(2026, 11, 1), datetime(2026, 11, 1, tzinfo=UTC)),  # a date is its midnight UTC
        (datetime(2026, 11, 1, 5, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # naive is UTC
        (datetime(2026, 11, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), datetime(2026, 10, 31, 23, tzinfo=UTC)),
    ],
)
def test_an_as_of_instant_is_utc(given, instant):
    got = as_of_instant(given)
    assert got == instant and got.tzinfo == UTC


def test_as_of_reaches_dbt_as_an_environment_variable_in_utc():
    assert as_of_env(date(2026, 11, 1)) == {"METERLINE_AS_OF": "2026-11-01T00:00:00+00:00"}
    later = datetime(2026, 11, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert as_of_env(later) == {"METERLINE_AS_OF": "2026-10-31T23:00:00+00:00"}


def test_a_close_is_as_of_its_period_end():
    assert Period.parse("2026-12").closes_at == datetime(2027, 1, 1, tzinfo=UTC)


def test_meterline_dbt_takes_an_as_of_before_the_dbt_command():
    args = build_parser().parse_args(["dbt", "--as-of", "2026-11-01T04:00Z", "build", "--select", "quotas"])
    assert args.as_of == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert args.rest == ["build", "--select", "quotas"]
    args = build_parser().parse_args(["dbt", "build", "--as-of", "x"])  # after the command: dbt's own
    assert args.as_of is None and args.rest == ["build", "--as-of", "x"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dbt", "--as-of", "31/10/2026", "build"])
