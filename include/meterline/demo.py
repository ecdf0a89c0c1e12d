"""`make demo`: the whole pipeline on the embedded warehouse, with progress on the terminal.

Each step is a function; the demo runs them in order and stops at the first failure, saying
which step failed. Running it again is safe: every step is idempotent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import date, timedelta

from meterline import airflow_env, transform, warehouse


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def step_warehouse(ctx: dict) -> str:
    ctx["url"] = warehouse.url()
    applied = warehouse.bootstrap(ctx["url"])
    return f"warehouse ready, migrations applied now: {', '.join(applied) or 'none'}"


def step_airflow(ctx: dict) -> str:
    ctx["airflow_env"] = env = airflow_env.environment(conninfo=ctx["url"])
    migrated = airflow_env.migrate(env)
    transform.ensure_manifest(ctx["url"])
    return f"Airflow metadata {'migrated' if migrated else 'up to date'} in {env['AIRFLOW_HOME']}; dbt manifest ready"


# The demo month and its size: a realistic month that runs end to end in a few minutes here.
PERIOD = date(2026, 10, 1)
TENANTS, SUBSCRIPTIONS = 12, 24
EVENTS_PER_DAY = int(os.environ.get("METERLINE_DEMO_EVENTS_PER_DAY", "20000"))
CUR_ROWS = int(os.environ.get("METERLINE_DEMO_CUR_ROWS", "50000"))
CUR_DELIVERIES = 2  # the second restates the first and is final (bill_invoice_id set)
# The generator's default prices give ~19 USD a CUR line: 50,000 lines would cost ~930k USD a
# month against ~60k of revenue. Divided by 30 the cloud bill is about half the revenue, and a
# few heavy tenants on small plans still run at a loss.
CUR_COST_DIVISOR = int(os.environ.get("METERLINE_DEMO_CUR_COST_DIVISOR", "30"))

ANALYST_QUERIES = [
    (
        "Revenue by tenant for the month (issued invoices)",
        "select tenant_id, currency, count(*) as invoices, sum(total) as total"
        " from billing.invoices where period_start = %(p)s and status <> 'void'"
        " group by 1, 2 order by total desc limit 5",
    ),
    (
        "Reconciliation of cloud cost for the month",
        "select service, raw_cost, allocated_cost, variance_pct, status from marts.recon_summary"
        " where period_start = %(p)s order by raw_cost desc",
    ),
    (
        "Top usage by subscription and event type",
        "select subscription_id, event_type, sum(event_count) as events, sum(total_tokens) as tokens"
        " from marts.usage_monthly where month = %(p)s group by 1, 2 order by events desc limit 5",
    ),
    (
        "Budgets for the month (tenants and services)",
        "select budget_id, amount, currency, actual, pct_used, state from marts.budget_status"
        " where period_start = %(p)s order by pct_used desc",
    ),
]


def _days(period: date) -> list[date]:
    following = date(period.year + (period.month == 12), period.month % 12 + 1, 1)
    return [period + timedelta(days=i) for i in range((following - period).days)]


def step_generate(ctx: dict) -> str:
    """Write the month's landing zone once; a second demo reuses it (same seed, same files)."""
    from meterline.landing import landing
    from meterline.synthetic.catalog import generate_catalog
    from meterline.synthetic.cur import generate as generate_cur
    from meterline.synthetic.events import generate as generate_events

    zone = landing()
    marker = f"demo/{PERIOD:%Y-%m}-{EVENTS_PER_DAY}-{CUR_ROWS}-{CUR_COST_DIVISOR}.done"
    if zone.exists(marker):
        return f"landing zone {zone.url} already holds the demo month"
    months = generate_cur(
        zone, start=PERIOD, months=1, rows=CUR_ROWS, deliveries=CUR_DELIVERIES, tenants=TENANTS,
        cost_divisor=CUR_COST_DIVISOR,
    )  # fmt: skip
    total = months[0].decimal("billed")  # what AWS invoices: net of discounts where they apply
    generate_catalog(
        zone.url, tenants=TENANTS, subscriptions=SUBSCRIPTIONS, period=PERIOD,
        aws_invoice_totals={f"{PERIOD:%Y-%m}": (total, "USD")},
    )  # fmt: skip
    events = generate_events(zone.url, PERIOD, len(_days(PERIOD)), events_per_day=EVENTS_PER_DAY)
    zone.write_bytes(marker, b"")
    return (
        f"{len(events.files)} event files ({EVENTS_PER_DAY:,} events a day with noise), "
        f"{CUR_DELIVERIES} CUR deliveries of {CUR_ROWS:,} lines (AWS total {total:,.2f} USD), "
        f"a catalog of {TENANTS} tenants and {SUBSCRIPTIONS} subscriptions in {zone.url}"
    )


def step_dags(ctx: dict) -> str:
    """Every DAG in the order a month runs, through Airflow (dag.test, one process)."""
    month = airflow_env.month_plan(PERIOD, len(_days(PERIOD)))
    # After the close, budget_status measures the month's invoices (the refresh before the close,
    # in the month's plan, found none in a new warehouse).
    after_close = month[-1]["logical_date"].replace("T04:", "T05:")
    plan = [{"dag_id": "warehouse_setup"}, *month, {"dag_id": "refresh_budgets", "logical_date": after_close}]
    runs = airflow_env.run_plan(plan, ctx["airflow_env"], echo=True)
    return f"{len(runs)} DAG runs succeeded"


def step_summary(ctx: dict) -> str:
    from meterline.landing import outbox

    with warehouse.connect(ctx["url"]) as conn:
        for title, query in ANALYST_QUERIES:
            cur = conn.execute(query, {"p": PERIOD})
            names = [c.name for c in cur.description]
            _say(f"  {title}:")
            _say("    " + " | ".join(names))
            for row in cur.fetchall():
                _say("    " + " | ".join(str(v) for v in row))
        issued = conn.execute(
            "select count(*) from billing.invoices where period_start = %s and status <> 'void'", [PERIOD]
        ).fetchone()[0]
        statuses = dict(
            conn.execute(
                "select status, count(*) from marts.invoice_header where period_start = %s group by 1", [PERIOD]
            ).fetchall()
        )
        revenue, cost, margin, losing = conn.execute(
            "select sum(revenue_usd), sum(allocated_cost), sum(gross_margin), count(*) filter (where gross_margin < 0)"
            " from marts.fct_tenant_margin where month = %s",
            [PERIOD],
        ).fetchone()
        # The exact cost summed, rounded once: the AWS invoice's total. Summing recon_summary's
        # per-service raw_cost (each rounded to the cent) can be a cent or two off it.
        (cloud,) = conn.execute(
            "select round(sum(raw_cost_exact), 2) from marts.recon_summary where period_start = %s", [PERIOD]
        ).fetchone()
    if revenue:
        _say(
            f"  The month in USD: revenue {revenue:,.2f}, cloud cost {cloud or 0:,.2f} ({(cloud or 0) / revenue:.0%} of"
            f" revenue; {cost or 0:,.2f} allocated to tenants), gross margin {margin or 0:,.2f};"
            f" {losing} tenant(s) at a loss"
        )
    box = outbox()
    ctx["report"] = box.uri(f"reports/{PERIOD:%Y-%m}.html")
    ctx["invoices"] = box.uri(f"invoices/{PERIOD:%Y-%m}/")
    return f"{issued} invoices issued for {PERIOD:%Y-%m} (drafts by status: {statuses})"


def step_docs(ctx: dict) -> str:
    from meterline.period import Period
    from meterline.reporting.dbt_docs import publish_dbt_docs

    site = publish_dbt_docs(ctx["url"], Period.parse(PERIOD).closes_at)
    ctx["docs"] = site.index
    return f"dbt docs generated against the warehouse: {len(site.files)} files next to the close report"


STEPS: list[tuple[str, Callable[[dict], str]]] = [
    ("start the warehouse", step_warehouse),
    ("prepare Airflow", step_airflow),
    ("generate the demo month", step_generate),
    ("run the month through Airflow", step_dags),
    ("what an analyst sees", step_summary),
    ("publish the dbt docs", step_docs),
]


def run() -> int:
    ctx: dict = {}
    started = time.monotonic()
    for number, (title, step) in enumerate(STEPS, start=1):
        _say(f"{number}/{len(STEPS)} {title} ...")
        t0 = time.monotonic()
        try:
            outcome = step(ctx)
        except Exception as exc:
            _say(f"FAILED at step {number} ({title}): {exc}")
            return 1
        _say(f"    {outcome} ({time.monotonic() - t0:.1f}s)")
    _say(f"done in {time.monotonic() - started:.0f}s")
    _say(f"warehouse: {ctx['url']}  (connect: .venv/bin/meterline warehouse psql)")
    _say(f"invoices:  {ctx['invoices']}")
    _say(f"report:    {ctx['report']}")
    _say(f"dbt docs:  {ctx['docs']}")
    _say("Airflow UI: make airflow")
    return 0
