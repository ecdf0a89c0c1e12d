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
from meterline.period import Period


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def step_warehouse(ctx: dict) -> str:
    ctx["url"] = warehouse.url()
    applied = warehouse.bootstrap(ctx["url"])
    return f"warehouse ready, migrations applied now: {', '.join(applied) or 'none'}"


def step_airflow(ctx: dict) -> str:
    """Airflow's metadata and dbt's manifest, side by side: each is its own process."""
    from concurrent.futures import ThreadPoolExecutor

    ctx["airflow_env"] = env = airflow_env.environment(conninfo=ctx["url"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        migrating = pool.submit(airflow_env.migrate, env)
        parsing = pool.submit(transform.ensure_manifest, ctx["url"])
        migrated = migrating.result()
        parsing.result()
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

# What an analyst asks of the month, as they would ask it: tenants by name, money per currency.
ANALYST_QUERIES = [
    (
        "Revenue by tenant for the month (issued invoices, per currency)",
        "select tenant_name as tenant, currency, count(*) as invoices, sum(total) as total"
        " from billing.invoices where period_start = %(p)s and status <> 'void'"
        " group by 1, 2 order by 2, 4 desc limit 8",
    ),
    (
        "Reconciliation of cloud cost for the month",
        "select service, currency, raw_cost as cost, allocated_cost - quarantined_cost as allocated_to_tenants,"
        " quarantined_cost as quarantine_pool, status from marts.recon_summary"
        " where period_start = %(p)s order by raw_cost desc",
    ),
    (
        "Top usage by tenant and event type",
        "with subscriptions as (select distinct subscription_id, tenant_id from staging.stg_catalog__subscriptions)"
        " select t.name as tenant, u.event_type, sum(u.event_count) as events, sum(u.total_tokens) as tokens"
        " from marts.usage_monthly u join subscriptions s using (subscription_id)"
        " join staging.stg_catalog__tenants t using (tenant_id)"
        " where u.month = %(p)s group by 1, 2 order by events desc limit 5",
    ),
    (
        "Budgets for the month (tenants and services)",
        "select budget_id, amount, currency, actual, pct_used, state from marts.budget_status"
        " where period_start = %(p)s order by pct_used desc",
    ),
    (
        "Payments received for the month's invoices (the processor's exports)",
        "select status, currency, count(*) as invoices, sum(total) as total from billing.invoices"
        " where period_start = %(p)s group by 1, 2 order by 1, 2",
    ),
    (
        "Payments that do not simply pay their invoice, still open (billing.payment_mismatches)",
        "select reason, currency, count(*) as payments, sum(amount) as amount from billing.payment_mismatches"
        " where resolved_at is null group by 1, 2 order by 1, 2",
    ),
]
# Columns holding an amount in the row's `currency`: shown to its minor unit.
MONEY_COLUMNS = {"total", "amount", "actual", "cost", "allocated_to_tenants", "quarantine_pool"}


def _cell(name: str, value: object, currency: str | None) -> str:
    from decimal import Decimal

    from meterline.money import format_amount

    if name in MONEY_COLUMNS and currency and isinstance(value, Decimal):
        return format_amount(value, currency)
    if isinstance(value, int | Decimal):
        return f"{value:,}"
    return "" if value is None else str(value)


def _days(period: date) -> list[date]:
    return [period + timedelta(days=i) for i in range((Period.parse(period).end - period).days)]


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
    """Every DAG in the order a month runs, through Airflow (dag.test, one process), each run the
    scheduled run of its date (meterline.dagrun): a scheduler started later carries on after them."""
    month = airflow_env.month_plan(PERIOD, len(_days(PERIOD)))
    # After the close, budget_status measures the month's invoices (the refresh before the close,
    # in the month's plan, found none in a new warehouse).
    after_close = month[-1]["logical_date"].replace("T04:", "T05:")
    plan = [{"dag_id": "warehouse_setup"}, *month, {"dag_id": "refresh_budgets", "logical_date": after_close}]
    runs = airflow_env.run_plan(plan, ctx["airflow_env"], echo=True)
    return f"{len(runs)} DAG runs succeeded"


def step_payments(ctx: dict) -> str:
    """The processor's exports for the issued invoices (generated once: paid in the next month,
    with a partial payment, a refund, a cent short and an unknown invoice number), loaded by
    ingest_payments after the second export's day."""
    from meterline.landing import landing
    from meterline.synthetic.payments import generate_payments

    following = Period.parse(PERIOD).end
    zone = landing()
    if not zone.list(f"payments/{following:%Y-%m}"):
        generated = generate_payments(ctx["url"], zone.url, PERIOD)
        _say(f"    {len(generated.files)} payment exports written ({generated.rows} rows)")
    runs = airflow_env.run_plan(
        [{"dag_id": "ingest_payments", "logical_date": f"{following.replace(day=9)}T00:00:00+00:00"}],
        ctx["airflow_env"],
        echo=True,
    )
    with warehouse.connect(ctx["url"]) as conn:
        paid, mismatches = conn.execute(
            "select (select count(*) from billing.invoices where period_start = %s and status = 'paid'),"
            " (select count(*) from billing.payment_mismatches where resolved_at is null)",
            [PERIOD],
        ).fetchone()
    return f"{len(runs)} DAG run succeeded: {paid} invoices paid, {mismatches} payment mismatches to resolve"


def step_summary(ctx: dict) -> str:
    from meterline.landing import outbox
    from meterline.money import format_money

    with warehouse.connect(ctx["url"]) as conn:
        for title, query in ANALYST_QUERIES:
            cur = conn.execute(query, {"p": PERIOD})
            names = [c.name for c in cur.description]
            _say(f"  {title}:")
            _say("    " + " | ".join(names))
            for row in cur.fetchall():
                currency = dict(zip(names, row, strict=True)).get("currency")
                _say("    " + " | ".join(_cell(n, v, currency) for n, v in zip(names, row, strict=True)))
        issued = conn.execute(
            "select count(*) from billing.invoices where period_start = %s and status <> 'void'", [PERIOD]
        ).fetchone()[0]
        statuses = dict(
            conn.execute(
                "select status, count(*) from marts.invoice_header where period_start = %s group by 1", [PERIOD]
            ).fetchall()
        )
        revenue = conn.execute(
            "select currency, sum(subtotal - credits) from marts.invoice_header"
            " where period_start = %s and status in ('issued', 'paid') group by 1 order by 1",
            [PERIOD],
        ).fetchall()
        # The close report's figures, defined once in dbt (marts.fct_period_margin).
        margin = conn.execute(
            "select revenue_usd, cloud_cost, allocated_cost, unallocated_cost, gross_margin, margin_pct"
            " from marts.fct_period_margin where month = %s",
            [PERIOD],
        ).fetchone()
        losing = [
            name
            for (name,) in conn.execute(
                "select t.name from marts.fct_tenant_margin m join staging.stg_catalog__tenants t using (tenant_id)"
                " where m.month = %s and m.gross_margin < 0 order by m.gross_margin",
                [PERIOD],
            )
        ]
    if revenue:
        _say("  Invoiced revenue (pre-tax, after credits): " + ", ".join(format_money(a, c) for c, a in revenue))
    if margin:
        revenue_usd, cloud, allocated, pool, gross = (format_money(v, "USD") for v in margin[:5])
        pct = margin[5]
        share = f" ({pct:.1f} % of revenue)" if pct is not None else ""
        _say(
            f"  In USD at indicative rates: revenue {revenue_usd}; cloud cost {cloud}"
            f" (allocated to tenants {allocated}, quarantine pool {pool}); gross margin {gross}{share}"
        )
        _say(f"  Tenants at a loss on their allocated cost: {', '.join(losing) or 'none'}")
    box = outbox()
    ctx["report"] = box.uri(f"reports/{PERIOD:%Y-%m}.html")
    ctx["invoices"] = box.uri(f"invoices/{PERIOD:%Y-%m}/")
    return f"{issued} invoices issued for {PERIOD:%Y-%m} (drafts by status: {statuses})"


def step_docs(ctx: dict) -> str:
    from meterline.reporting.dbt_docs import publish_dbt_docs

    site = publish_dbt_docs(ctx["url"], Period.parse(PERIOD).closes_at)
    ctx["docs"] = site.index
    return f"dbt docs generated against the warehouse: {len(site.files)} files next to the close report"


STEPS: list[tuple[str, Callable[[dict], str]]] = [
    ("start the warehouse", step_warehouse),
    ("prepare Airflow", step_airflow),
    ("generate the demo month", step_generate),
    ("run the month through Airflow", step_dags),
    ("receive the month's payments", step_payments),
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
