"""The monthly close report: one self-contained HTML page per period for finance.

`OUTBOX_URL/reports/YYYY-MM.html`: headline figures (revenue, cost, margin, invoices issued and
blocked), charts (daily usage of the top tenants, cost by service, allocated vs quarantined cost,
margin by tenant), the reconciliation table, the gate's decision with its reasons and the
definition of every figure. Charts are drawn by matplotlib and inlined as SVG, so the page opens
anywhere with no network.

The report computes no money: the period's cost and margin figures are dbt's
(`marts.fct_period_margin`, `recon_summary`, `fct_tenant_margin`), and amounts are shown to their
currency's minor unit (`meterline.money.format_money`, from the same currencies seed).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from meterline import landing, warehouse


@dataclass
class CloseFigures:
    period: date
    revenue: dict[str, Decimal] = field(default_factory=dict)  # by currency, pre-tax after credits
    raw_cost: Decimal = Decimal(0)  # every cost line of the period, summed exactly, rounded once
    allocated_cost: Decimal = Decimal(0)  # of it, allocated to tenants
    quarantined_cost: Decimal = Decimal(0)  # of it, the quarantine pool: allocated to no tenant
    revenue_usd: Decimal | None = None  # revenue at the indicative USD rates, the margin's revenue
    gross_margin_usd: Decimal | None = None  # revenue_usd - raw_cost
    margin_pct: Decimal | None = None
    invoices_by_status: dict[str, int] = field(default_factory=dict)
    recon: list[dict[str, Any]] = field(default_factory=list)
    gate: list[dict[str, Any]] = field(default_factory=list)
    daily_usage: list[dict[str, Any]] = field(default_factory=list)
    cost_by_service: list[dict[str, Any]] = field(default_factory=list)
    cost_by_day: list[dict[str, Any]] = field(default_factory=list)
    margin_by_tenant: list[dict[str, Any]] = field(default_factory=list)


def _rows(conn: psycopg.Connection, query: str, params: list) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def gather(conn: psycopg.Connection, period: date) -> CloseFigures:
    f = CloseFigures(period=period)
    for row in _rows(
        conn,
        "select currency, sum(subtotal - credits) as revenue from marts.invoice_header"
        " where period_start = %s and status in ('issued', 'paid') group by currency order by currency",
        [period],
    ):
        f.revenue[row["currency"]] = row["revenue"]
    f.invoices_by_status = {
        r["status"]: r["n"]
        for r in _rows(
            conn,
            "select status, count(*) as n from marts.invoice_header where period_start = %s group by status",
            [period],
        )
    }
    for margin in _rows(
        conn,
        "select revenue_usd, cloud_cost, allocated_cost, unallocated_cost, gross_margin, margin_pct"
        " from marts.fct_period_margin where month = %s",
        [period],
    ):
        f.raw_cost, f.allocated_cost, f.quarantined_cost = (
            margin["cloud_cost"],
            margin["allocated_cost"],
            margin["unallocated_cost"],
        )
        f.revenue_usd, f.gross_margin_usd = margin["revenue_usd"], margin["gross_margin"]
        f.margin_pct = margin["margin_pct"]
    f.recon = _rows(
        conn,
        "select service, currency, raw_cost, allocated_cost - quarantined_cost as tenant_cost, quarantined_cost,"
        " allocated_cost, variance, variance_pct, status from marts.recon_summary"
        " where period_start = %s order by service",
        [period],
    )
    f.margin_by_tenant = _rows(
        conn,
        "select m.tenant_id, t.name as tenant_name, m.revenue_usd, m.allocated_cost, m.gross_margin, m.margin_pct"
        " from marts.fct_tenant_margin m left join staging.stg_catalog__tenants t using (tenant_id)"
        " where m.month = %s order by m.gross_margin desc nulls last",
        [period],
    )
    f.gate = _rows(
        conn,
        "select check_name, scope, invoice_id, passed, overridden, reason, decided_at from ops.invoice_gate"
        " where period_start = %s and run_id = (select run_id from ops.invoice_gate where period_start = %s"
        " order by decided_at desc limit 1) order by passed, scope, check_name, invoice_id",
        [period, period],
    )
    f.daily_usage = _rows(
        conn,
        """
        with tenants as (select distinct subscription_id, tenant_id from staging.stg_catalog__subscriptions),
        daily as (
            select u.day, t.tenant_id, sum(u.event_count) as events
            from marts.usage_daily u join tenants t using (subscription_id)
            where u.day >= %s and u.day < (%s::date + interval '1 month')
            group by 1, 2
        ),
        top as (select tenant_id from daily group by tenant_id order by sum(events) desc limit 5)
        select day, tenant_id, n.name as tenant_name, events
        from daily join top using (tenant_id) left join staging.stg_catalog__tenants n using (tenant_id)
        order by day, tenant_id
        """,
        [period, period],
    )
    f.cost_by_service = _rows(
        conn,
        "select line_item_product_code as service, sum(billed_cost) as cost from marts.fact_cost_raw"
        " where billing_period = %s group by 1 order by 2 desc",
        [period],
    )
    f.cost_by_day = _rows(
        conn,
        "select usage_date, sum(allocated_cost) filter (where not is_quarantined) as allocated,"
        " sum(allocated_cost) filter (where is_quarantined) as quarantined"
        " from marts.fact_cost_allocated where billing_period = %s group by 1 order by 1",
        [period],
    )
    return f


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _tenant_labels(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Each tenant as finance knows it: its catalog name, else its id; a name two tenants share
    gets the id beside it, so no two bars or lines take the same label."""
    names = {str(r["tenant_id"]): r.get("tenant_name") or str(r["tenant_id"]) for r in rows}
    uses = Counter(names.values())
    return {t: f"{n} ({t})" if uses[n] > 1 else n for t, n in names.items()}


def charts(f: CloseFigures) -> dict[str, str]:
    """Each chart as an inline SVG string; a chart without data says so instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    if f.daily_usage:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        labels = _tenant_labels(f.daily_usage)
        for tenant in sorted({r["tenant_id"] for r in f.daily_usage}):
            points = [(r["day"], r["events"]) for r in f.daily_usage if r["tenant_id"] == tenant]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=labels[str(tenant)])
        # Log scale: the top tenant often has tens of times the others' events, which a linear
        # axis flattens into a line at zero; on a log axis each tenant's daily shape shows.
        ax.set_yscale("log")
        ax.set_ylabel("events per day (log scale)")
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
        out["daily_usage"] = _svg(fig)
    if f.cost_by_service:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.barh([r["service"] for r in f.cost_by_service][::-1], [float(r["cost"]) for r in f.cost_by_service][::-1])
        ax.set_xlabel("billed cost (USD)")
        out["cost_by_service"] = _svg(fig)
    if f.cost_by_day:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        days = [r["usage_date"] for r in f.cost_by_day]
        allocated = [float(r["allocated"] or 0) for r in f.cost_by_day]
        quarantined = [float(r["quarantined"] or 0) for r in f.cost_by_day]
        ax.bar(days, allocated, label="allocated to tenants")
        ax.bar(days, quarantined, bottom=allocated, label="quarantine pool")
        ax.set_ylabel("cost (USD)")
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
        out["allocated_vs_quarantined"] = _svg(fig)
    margins = [r for r in f.margin_by_tenant if r["gross_margin"] is not None][:15]
    if margins:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        values = [float(r["gross_margin"]) for r in margins]
        labels = _tenant_labels(margins)
        ax.bar(
            [labels[str(r["tenant_id"])] for r in margins], values, color=["#2a7" if v >= 0 else "#c33" for v in values]
        )
        ax.set_ylabel("tenant margin (USD): revenue - cost allocated")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        out["margin_by_tenant"] = _svg(fig)
    return out


def render(f: CloseFigures) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    from meterline.money import format_money

    env = Environment(loader=PackageLoader("meterline.reporting"), autoescape=select_autoescape())
    env.filters["money"] = format_money
    return env.get_template("close_report.html.j2").render(f=f, charts=charts(f))


def write_close_report(conninfo: str, period: date, outbox_url: str | None = None) -> str:
    """Build the period's report from the warehouse and write it; returns its URL."""
    with warehouse.connect(conninfo) as conn:
        figures = gather(conn, period)
    return landing.outbox(outbox_url).write_bytes(f"reports/{period:%Y-%m}.html", render(figures).encode())
