"""A build is as of an instant it is given (METERLINE_AS_OF), never of the day it runs: the same
data built as of October's close and as of a day months later gives the same past months, to the
last line, while the later build adds the months up to its own as-of day. What is time-relative
follows the given instant: the drafts' horizon, and which quotas are active."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from _billing_month import build_invoices, month, put_usage
from oracle.usage import generate_usage

from meterline import transform

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERIOD = date(2026, 10, 1)
CLOSE = datetime(2026, 11, 1, tzinfo=UTC)  # October's close
LATER = datetime(2027, 3, 15, 12, 30, tzinfo=UTC)  # a re-run months later


def _past_months(db) -> tuple[list[tuple], list[tuple]]:
    """Every draft and line of the months up to October, all columns."""
    headers = db.execute(
        "select * from marts.invoice_header where period_start <= %s order by invoice_id", [PERIOD]
    ).fetchall()
    lines = db.execute(
        "select l.* from marts.invoice_draft_lines l join marts.invoice_header h using (invoice_id)"
        " where h.period_start <= %s order by l.invoice_id, l.line_no",
        [PERIOD],
    ).fetchall()
    return headers, lines


def _running(subscriptions: list[dict[str, str]], at: datetime) -> set[str]:
    """Subscriptions with a catalog row running at `at` (the oracle for quotas.active)."""

    def ts(text: str) -> datetime | None:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None

    return {
        s["subscription_id"]
        for s in subscriptions
        if ts(s["started_at"]) <= at and (ts(s["ended_at"]) is None or ts(s["ended_at"]) > at)
    }


def _active_quotas(db) -> set[str]:
    return {str(sid) for (sid,) in db.execute("select subscription_id from marts.quotas where active")}


def test_past_months_are_identical_whatever_day_the_build_is_as_of(warehouse_url, db, tmp_path):
    catalog = month(tmp_path, warehouse_url, PERIOD)
    subscriptions = catalog.files["subscriptions.csv"]
    put_usage(db, generate_usage(subscriptions, datetime(2026, 10, 1, tzinfo=UTC)))
    with_quota = {q["subscription_id"] for q in catalog.files["quotas.csv"]}

    build_invoices(warehouse_url, as_of=CLOSE)
    at_close = _past_months(db)
    assert len(at_close[0]) > 24 and len(at_close[1]) > 100  # September and October, every kind of line
    months = db.execute("select min(period_start), max(period_start) from marts.invoice_header").fetchone()
    assert months == (date(2026, 9, 1), date(2026, 11, 1))  # through the month of as_of
    active = _active_quotas(db)
    assert active == _running(subscriptions, CLOSE) & with_quota
    assert active and with_quota - active  # some quota holders ended in October: not active at the close

    build_invoices(warehouse_url, as_of=LATER)
    assert _past_months(db) == at_close
    months = db.execute("select min(period_start), max(period_start) from marts.invoice_header").fetchone()
    assert months == (date(2026, 9, 1), date(2027, 3, 1))
    assert _active_quotas(db) == _running(subscriptions, LATER) & with_quota


def test_a_time_relative_model_without_as_of_fails_to_compile_instead_of_reading_the_clock(warehouse_url):
    done = transform.run(
        ["compile", "--select", "quotas", "--quiet"], warehouse_url, check=False, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "as_of is not set" in done.stdout + done.stderr

    done = transform.run(
        ["compile", "--select", "quotas", "--quiet"],
        warehouse_url,
        as_of=datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "cast('2026-11-01T05:30:00+00:00' as timestamptz)" in done.stdout


def test_a_new_as_of_does_not_make_dbt_parse_the_project_again(warehouse_url):
    """The as-of reaches dbt in an environment variable read when dbt executes: two calls as of
    two instants parse the project once (a var that changed made dbt parse all of it each time;
    a close paid ~12 s for it)."""
    perf = transform.target_dir() / "perf_info.json"
    for as_of in (CLOSE, LATER):
        transform.run(["parse", "--quiet"], warehouse_url, as_of=as_of)
    assert json.loads(perf.read_text())["is_partial_parse_enabled"]
    assert json.loads(perf.read_text())["parsed_path_count"] == 0
    compiled = transform.run(
        ["compile", "--select", "quotas", "--quiet", "--output", "json"],
        warehouse_url,
        as_of=LATER,
        capture_output=True,
        text=True,
    )
    assert "2027-03-15T12:30:00+00:00" in compiled.stdout


def test_a_call_in_a_scratch_target_leaves_its_parse_for_the_next(warehouse_url, tmp_path, monkeypatch):
    """The close's dbt calls run in a target folder of their own (transform.scratch_target): the
    partial-parse cache they leave goes back to the shared folder, so the next call, the next
    close's among them, parses nothing (each parsed the whole project when the shared folder had
    no usable cache)."""
    shared = tmp_path / "target"
    monkeypatch.setenv("METERLINE_DBT_TARGET_PATH", str(shared))  # no cache in it yet
    _, output = transform.run_for_results(["parse", "--quiet"], warehouse_url, as_of=CLOSE)
    assert (shared / "partial_parse.msgpack").exists(), output
    with transform.scratch_target() as scratch:
        transform.run(["parse", "--quiet", "--target-path", str(scratch)], warehouse_url, as_of=LATER)
        perf = json.loads((scratch / "perf_info.json").read_text())
    assert perf["is_partial_parse_enabled"]
    assert perf["parsed_path_count"] == 0
