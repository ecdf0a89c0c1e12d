"""The monthly close of one period: build -> suites -> gate -> emit -> report.

One close, two doors: the `close_billing_period` DAG runs these steps as its tasks and
`meterline close --period YYYY-MM` runs them in order through `run_close`; both call the same
functions, so they decide the same way.

- build: one `dbt build` of the invoices, the reconciliation and what they need, with their
  tests, as of the period's end (`Period.closes_at`), never the day it runs. Its test results
  are recorded as the `dbt_billing` suite; a model that fails to build stops the close.
- suites: the great-expectations suites on dbt's columns (no second dbt run).
- gate: the decision, bound to the data it read; raises when the period is blocked.
- emit: issue what the gate let through while the data is unchanged; raises when a draft it
  let through could not be issued.
- report: the close report, written whatever the gate decided.

`invoice_header` is a view over the drafts, the gate's decisions and the issued invoices, so
nothing is rebuilt after the gate or the emitter. A re-run of a closed period is safe: the
emitter never issues twice and issued invoices are never changed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

log = logging.getLogger(__name__)

# The models a close builds: pricing, invoices, reconciliation and margin (and what they need),
# and the daily usage the close report charts, so a close works even where no nightly transform ran.
CLOSE_SELECTION = (
    "+path:models/marts/billing +path:models/marts/cost/recon_summary.sql +path:models/marts/cost/recon_exceptions.sql"
    " +path:models/marts/usage/usage_daily.sql"
)
# Only tests whose every parent the close builds: a test that also reads a model outside the
# selection (the budgets' relationship to currencies) belongs to the nightly transform.
CLOSE_TESTS = ("--indirect-selection", "cautious")


class CloseFailed(RuntimeError):
    """A step of the close could not do its work; the message says which and why."""


def resolve_period(requested: str | None, logical_date: date) -> str:
    """The period to close: the `period` param when given, else the month before the run's date."""
    from meterline.period import Period

    if requested:
        return Period.parse(requested).label
    # A datetime is a date too: the day before its first of the month lies in the month before.
    previous = logical_date.replace(day=1) - timedelta(days=1)
    return Period.parse(date(previous.year, previous.month, 1)).label


def build(conninfo: str, period: str) -> dict[str, int]:
    """dbt build of the close's models and their tests, as of the period's end; the tests'
    outcomes are recorded for the gate (suite dbt_billing). Raises CloseFailed when a model,
    seed or snapshot fails to build."""
    from meterline import transform, warehouse
    from meterline.period import Period
    from meterline.quality.suites import dbt_test_results, store_results
    from meterline.spark import engine

    p = Period.parse(period)
    started = time.monotonic()
    if engine.engine() == "spark":
        # The heavy models on Spark, handed to marts; the close's build then leaves them out.
        engine.build(conninfo)
    results, output = transform.run_for_results(
        ["build", "--select", *CLOSE_SELECTION.split(), *engine.postgres_exclusions(), *CLOSE_TESTS],
        conninfo,
        as_of=p.closes_at,
    )
    if results is None:
        raise CloseFailed(f"dbt build of the close for {p} did not run:\n{output}")
    broken = [
        f"{r['unique_id']}: {r.get('message')}"
        for r in results
        if not r["unique_id"].startswith(("test.", "unit_test.")) and r["status"] not in ("success", "skipped")
    ]
    if broken:
        raise CloseFailed(f"dbt build of the close for {p} failed:\n  " + "\n  ".join(broken))
    tests = store_results(conninfo, p, dbt_test_results(results), started)
    for failure in tests.failures:
        log.error("dbt test failed: %s (%s)", failure.expectation, failure.detail.get("message"))
    with warehouse.connect(conninfo) as conn:
        query = "select count(*) from marts.invoice_drafts where period_start = %s"
        (drafts,) = conn.execute(query, [p.start]).fetchone()
    log.info("built %d draft(s) for %s; %d dbt test(s), %d failed", drafts, p, len(tests.results), len(tests.failures))
    return {"drafts": drafts, "dbt_tests": len(tests.results), "dbt_tests_failed": len(tests.failures)}


def run_suites(conninfo: str, period: str) -> dict[str, int]:
    """The great-expectations suites of the period (the dbt tests were recorded by build)."""
    from meterline.quality.suites import run_suites as run

    result = run(conninfo, period, dbt_select=None)
    return {"expectations": len(result.results), "failed": len(result.failures)}


def gate(conninfo: str, period: str, override_check: str | None, justification: str | None, actor: str) -> dict:
    """Evaluate the gate; raise GateFailed with the operator's summary when the period is blocked."""
    from meterline.invoicing.gate import evaluate_gate, require_pass

    overrides = {override_check: justification or ""} if override_check else {}
    decision = evaluate_gate(conninfo, period, overrides, actor=actor)
    log.info("gate for %s:\n%s", period, decision.summary())
    require_pass(decision)
    return {"checks": len(decision.checks), "blocked_invoices": len(decision.blocked_invoices)}


def emit(conninfo: str, period: str, actor: str, outbox_url: str | None = None) -> dict[str, int]:
    """Issue what the gate let through; raise CloseFailed (after issuing the others) when a
    draft it let through could not be issued."""
    from meterline.invoicing.emit import emit as issue

    result = issue(conninfo, period, outbox_url, actor=actor)
    log.info(result.summary())
    if not result.complete:
        raise CloseFailed(result.summary())
    return {"issued": len(result.issued), "already_issued": len(result.already_issued), "blocked": len(result.blocked)}


def report(conninfo: str, period: str, outbox_url: str | None = None) -> str:
    """The close report (OUTBOX_URL/reports/YYYY-MM.html); returns its URL."""
    from meterline.period import Period
    from meterline.reporting.close_report import write_close_report

    return write_close_report(conninfo, Period.parse(period).start, outbox_url)


@dataclass
class CloseRun:
    period: str
    steps: dict[str, object] = field(default_factory=dict)  # step -> its counts, in order
    failed_step: str | None = None
    error: str | None = None
    report: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.failed_step is None


def run_close(
    conninfo: str,
    period: str,
    *,
    actor: str,
    override_check: str | None = None,
    justification: str | None = None,
    outbox_url: str | None = None,
) -> CloseRun:
    """The DAG's steps in its order, for `meterline close`: stops at the first that fails, and
    writes the report whatever happened (as the DAG's teardown does)."""
    from meterline.invoicing.gate import GateFailed

    run = CloseRun(period)
    steps = [
        ("build", lambda: build(conninfo, period)),
        ("suites", lambda: run_suites(conninfo, period)),
        ("gate", lambda: gate(conninfo, period, override_check, justification, actor)),
        ("emit", lambda: emit(conninfo, period, actor, outbox_url)),
    ]
    for name, step in steps:
        try:
            run.steps[name] = step()
        except (CloseFailed, GateFailed) as exc:
            run.failed_step, run.error = name, str(exc)
            break
    run.report = report(conninfo, period, outbox_url)
    return run
