"""The daily budget refresh: rebuild `marts.budget_master` (stamped `last_refreshed_at`) and
`marts.budget_status` as of a day, from the budgets the catalog sync loaded
(`raw.catalog_budgets`, budgets.csv of the catalog export).

budget_status measures spend from `marts.invoice_header` (tenants) and `marts.fact_cost_raw`
(services). On a warehouse where those are not built yet (before the first close), only
budget_master is refreshed (so budget data stays fresh for the gate) and the result says why
budget_status was left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from meterline import warehouse

log = logging.getLogger(__name__)

MASTER_MODELS = ("currencies", "stg_catalog__budgets", "budget_master")
STATUS_MODEL = "budget_status"
STATUS_NEEDS = ("marts.invoice_header", "marts.fact_cost_raw")


@dataclass(frozen=True)
class BudgetLine:
    budget_id: str
    period_start: date
    amount: Decimal
    currency: str
    actual: Decimal
    forecast: Decimal
    pct_used: Decimal
    state: str


@dataclass
class RefreshResult:
    as_of: date
    budgets: int
    status_skipped: str | None = None  # why budget_status was not rebuilt
    lines: list[BudgetLine] = field(default_factory=list)  # budget_status of the as-of month

    def counts(self) -> dict[str, int]:
        states = {"ok": 0, "warning": 0, "breached": 0}
        for line in self.lines:
            states[line.state] = states.get(line.state, 0) + 1
        return {"budgets": self.budgets, **states}

    def summary(self) -> str:
        head = f"budgets refreshed as of {self.as_of}: {self.budgets} budget(s)"
        if self.status_skipped:
            return f"{head}; budget_status not rebuilt: {self.status_skipped}"
        rows = [
            f"  {b.budget_id} {b.period_start:%Y-%m}: {b.actual} of {b.amount} {b.currency} ({b.pct_used} %),"
            f" forecast {b.forecast}, {b.state}"
            for b in self.lines
        ]
        return "\n".join([head, *rows])


def _missing(conninfo: str, names: tuple[str, ...]) -> list[str]:
    with warehouse.connect(conninfo) as conn:
        return [n for n in names if conn.execute("select to_regclass(%s)", [n]).fetchone()[0] is None]


def refresh(conninfo: str | None, as_of: date) -> RefreshResult:
    """Rebuild budget_master and (when its inputs exist) budget_status as of the day `as_of` (UTC):
    the DAG's run day, or what the operator names (`meterline budgets refresh --as-of`)."""
    from meterline import transform

    conninfo = conninfo or warehouse.url()
    missing = _missing(conninfo, STATUS_NEEDS)
    models = [*MASTER_MODELS] + ([] if missing else [STATUS_MODEL])
    done = transform.run(
        ["build", "--select", *models, "--indirect-selection", "cautious"],
        conninfo,
        as_of=as_of,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"dbt build of {' '.join(models)} failed (budget data not refreshed):\n{tail}")
    with warehouse.connect(conninfo) as conn:
        budgets = conn.execute("select count(*) from marts.budget_master").fetchone()[0]
        lines = (
            []
            if missing
            else [
                BudgetLine(*row)
                for row in conn.execute(
                    "select budget_id, period_start, amount, currency, actual, forecast, pct_used, state"
                    " from marts.budget_status where period_start = date_trunc('month', %s::date)::date"
                    " order by budget_id",
                    [as_of],
                ).fetchall()
            ]
        )
    skipped = f"no {', '.join(missing)} yet to measure spend from" if missing else None
    result = RefreshResult(as_of, budgets, skipped, lines)
    log.info("%s", result.summary())
    return result
