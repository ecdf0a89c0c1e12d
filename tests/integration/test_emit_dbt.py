"""End to end on the billing engineer's real dbt models: a generated catalog month priced by dbt,
the suites (with the dbt tests on the billing models), the gate and the emitter; then dbt shows
the issued invoices. A missing tax rate blocks only its invoices, and once fixed and rebuilt,
the gate lets them through (the gate's own earlier reasons do not keep them blocked)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from _billing_month import build_invoices, month, put_usage
from _gate_month import period_feeds
from oracle.usage import generate_usage

from meterline.invoicing.emit import emit
from meterline.invoicing.gate import evaluate_gate
from meterline.quality import run_suites

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERIOD = date(2026, 10, 1)
AS_OF = date(2026, 11, 1)  # October's close


def _drafts(db):
    return db.execute(
        "select h.invoice_id, t.country, h.status, h.total from marts.invoice_header h"
        " join raw.catalog_tenants t using (tenant_id) where h.period_start = %s order by 1",
        [PERIOD],
    ).fetchall()


def test_real_drafts_gate_emit_and_show_as_issued(warehouse_url, db, tmp_path):
    catalog = month(tmp_path / "landing", warehouse_url, PERIOD)
    usage = generate_usage(catalog.files["subscriptions.csv"], datetime(2026, 10, 1, tzinfo=UTC))
    put_usage(db, usage)
    gb_rates = db.execute("select country, rate, valid_from, valid_to, source_file from raw.catalog_tax_rates"
                          " where country = 'GB'").fetchall()  # fmt: skip
    db.execute("delete from raw.catalog_tax_rates where country = 'GB'")
    build_invoices(warehouse_url, as_of=AS_OF)
    period_feeds(db, PERIOD.isoformat(), usage[0][0])
    drafts = _drafts(db)
    gb = {d[0] for d in drafts if d[1] == "GB"}
    assert len(drafts) == 24 and gb

    run = run_suites(warehouse_url, "2026-10")
    dbt_rows = [r for r in run.results if r.suite == "dbt_billing"]
    assert dbt_rows and all(r.success for r in dbt_rows), [r for r in dbt_rows if not r.success]
    decision = evaluate_gate(warehouse_url, "2026-10", actor="ops:e2e")
    assert decision.passed, decision.summary()
    assert set(decision.blocked_invoices) == gb
    assert all(
        any("no tax rate for country GB" in r for r in reasons) for reasons in decision.blocked_invoices.values()
    )

    outbox = str(tmp_path / "outbox")
    first = emit(warehouse_url, "2026-10", outbox)
    assert len(first.issued) == 24 - len(gb) and set(first.blocked) == gb
    issued = db.execute(
        "select i.draft_id, i.total, h.total, i.subtotal - i.credits + i.tax, i.subtotal - i.credits,"
        " (select sum(amount) from billing.invoice_line_items l where l.invoice_id = i.invoice_id)"
        " from billing.invoices i join marts.invoice_header h on h.invoice_id = i.draft_id"
    ).fetchall()
    assert len(issued) == 24 - len(gb)
    for draft_id, total, draft_total, recomputed, pre_tax, lines in issued:
        assert total == draft_total == recomputed, draft_id  # copied to the cent
        assert lines == pre_tax, draft_id  # the copied lines add up to subtotal - credits

    # invoice_header (a view) shows them issued at once; the GB drafts show the gate's reasons.
    shown = {d[0]: d[2] for d in _drafts(db)}
    assert {k for k, v in shown.items() if v == "issued"} == {d[0] for d in drafts} - gb
    assert {k for k, v in shown.items() if v == "blocked"} == gb

    # Finance fixes the tax rate; dbt rebuilds; the gate now lets the GB drafts through.
    for row in gb_rates:
        db.execute(
            "insert into raw.catalog_tax_rates (country, rate, valid_from, valid_to, source_file)"
            " values (%s, %s, %s, %s, %s)",
            row,
        )
    build_invoices(warehouse_url, as_of=AS_OF)
    run_suites(warehouse_url, "2026-10", dbt_select=None)
    decision = evaluate_gate(warehouse_url, "2026-10", require_dbt=False)
    assert decision.passed and decision.blocked_invoices == {}, decision.summary()
    second = emit(warehouse_url, "2026-10", outbox)
    assert len(second.issued) == len(gb) and len(second.already_issued) == 24 - len(gb)
    total_issued = db.execute("select count(*), sum(total) > 0 from billing.invoices").fetchone()
    assert total_issued == (24, True)
    assert db.execute("select count(*) from billing.invoices where total < 0").fetchone() == (0,)
    assert Decimal(0) <= db.execute("select min(total) from billing.invoices").fetchone()[0]
