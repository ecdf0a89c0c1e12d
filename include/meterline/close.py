"""The monthly close, step by step, as plain functions the `close_billing_period` DAG wires.

build (dbt: invoices and reconciliation) -> suites (great-expectations + dbt tests) -> gate ->
emit -> report. Each step takes the period (`YYYY-MM`) and works only on it, so a re-run for a
past period is safe: the emitter never issues twice and issued invoices are never changed.
Every dbt call of a close is as of the period's end (`Period.closes_at`), never the day it runs.
"""

from __future__ import annotations

import logging
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


def resolve_period(requested: str | None, logical_date: date) -> str:
    """The period to close: the `period` param when given, else the month before the run's date."""
    from meterline.invoicing.period import Period

    if requested:
        return Period.parse(requested).label
    # A datetime is a date too: the day before its first of the month lies in the month before.
    previous = logical_date.replace(day=1) - timedelta(days=1)
    return Period.parse(date(previous.year, previous.month, 1)).label


def build(conninfo: str, period: str) -> dict[str, int]:
    from meterline import transform, warehouse
    from meterline.invoicing.period import Period

    p = Period.parse(period)
    transform.run(["build", "--select", *CLOSE_SELECTION.split(), *CLOSE_TESTS], conninfo, as_of=p.closes_at)
    with warehouse.connect(conninfo) as conn:
        drafts = conn.execute("select count(*) from marts.invoice_header where period_start = %s", [p.start]).fetchone()
    return {"drafts": drafts[0]}


def gate(conninfo: str, period: str, override_check: str | None, justification: str | None, actor: str) -> dict:
    """Evaluate the gate; raise with the operator's summary when the period is blocked."""
    from meterline.invoicing.gate import evaluate_gate, require_pass

    overrides = {override_check: justification or ""} if override_check else {}
    decision = evaluate_gate(conninfo, period, overrides, actor=actor)
    log.info("gate for %s:\n%s", period, decision.summary())
    if not decision.passed:
        # invoice_header reads ops.invoice_gate: rebuilt now, the drafts show `blocked` with the
        # reasons (the close report reads them). A passed gate's emit step rebuilds it instead.
        _rebuild_invoice_header(conninfo, period)
    require_pass(decision)
    return {"checks": len(decision.checks), "blocked_invoices": len(decision.blocked_invoices)}


def emit(conninfo: str, period: str, actor: str) -> dict[str, int]:
    """Issue what the gate let through, then rebuild invoice_header so it shows them as issued."""
    from meterline.invoicing.emit import emit as issue

    result = issue(conninfo, period, actor=actor)
    log.info(result.summary())
    _rebuild_invoice_header(conninfo, period)
    return {"issued": len(result.issued), "already_issued": len(result.already_issued), "blocked": len(result.blocked)}


def _rebuild_invoice_header(conninfo: str, period: str) -> None:
    """invoice_header joins the drafts with the gate's decisions and what was issued."""
    from meterline import transform
    from meterline.invoicing.period import Period

    transform.run(["run", "--select", "invoice_header", "--quiet"], conninfo, as_of=Period.parse(period).closes_at)
