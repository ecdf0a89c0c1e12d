"""The as-of instant handed to dbt (var as_of): always UTC, merged into any --vars given."""

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from meterline.cli import build_parser
from meterline.period import Period
from meterline.transform import as_of_instant, with_as_of

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


def test_as_of_is_added_to_the_vars_given_or_as_vars_of_its_own():
    assert with_as_of(["build", "--select", "quotas"], date(2026, 11, 1)) == [
        "build", "--select", "quotas", "--vars", '{"as_of": "2026-11-01T00:00:00+00:00"}'
    ]  # fmt: skip
    args = with_as_of(["run", "--vars", "{usage_rebuild_from: '2025-03-01'}", "--quiet"], date(2026, 11, 1))
    assert args[:2] == ["run", "--vars"] and args[3:] == ["--quiet"]
    assert json.loads(args[2]) == {"usage_rebuild_from": "2025-03-01", "as_of": "2026-11-01T00:00:00+00:00"}


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
