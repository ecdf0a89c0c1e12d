"""Late usage: events of an issued month loaded after issue are billed as an adjustment on the
next open draft; the issued invoice never changes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from _billing_month import build_invoices, month, put_usage, rebuild_invoices
from oracle.pricing import price_catalog
from oracle.usage import generate_usage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERIOD = date(2026, 10, 1)
CLOSED = datetime(2026, 11, 1, tzinfo=UTC)  # October's close: drafts through November
ISSUED_AT = datetime(2026, 11, 1, 6, tzinfo=UTC)
LATE_LOADED_AT = datetime(2026, 11, 20, 8, tzinfo=UTC)  # when the late events were loaded
REBUILT = datetime(2026, 11, 21, tzinfo=UTC)  # the nightly build after that


def _issue(db, draft_id: str, issued_at: datetime) -> uuid.UUID:
    """What the emitter does at issue, reduced to the rows invoice_header and adjustments read."""
    invoice_id = uuid.uuid4()
    header = db.execute(
        "select tenant_id, subscription_id, period_start, period_end, currency, subtotal, credits, tax, total"
        " from marts.invoice_header where invoice_id = %s",
        [draft_id],
    ).fetchone()
    with db.transaction():  # the pipeline writes an invoice, its lines and its hash at once
        db.execute(
            "insert into billing.invoices (invoice_id, invoice_number, draft_id, tenant_id, subscription_id,"
            " period_start, period_end, currency, subtotal, credits, tax, total, status, issued_at)"
            " values (%s, 'INV-2026-000001', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'issued', %s)",
            [invoice_id, draft_id, *header, issued_at],
        )
        db.execute(
            "insert into billing.invoice_line_items (invoice_id, line_no, kind, metric_code, description, quantity,"
            " unit_price, amount) select %s, line_no, kind, metric_code, description, quantity, unit_price, amount"
            " from marts.invoice_draft_lines where invoice_id = %s",
            [invoice_id, draft_id],
        )
        db.execute("select billing.seal_invoice(%s)", [invoice_id])
    return invoice_id


def test_late_events_become_an_adjustment_on_the_next_open_draft(warehouse_url, db, tmp_path):
    catalog = month(tmp_path, warehouse_url, PERIOD)
    usage = generate_usage(catalog.files["subscriptions.csv"], datetime(2026, 10, 1, tzinfo=UTC))
    put_usage(db, usage)
    build_invoices(warehouse_url, as_of=CLOSED)

    # A starter subscription running through October and on: per-unit llm_tokens.
    subs = catalog.files["subscriptions.csv"]
    row = next(
        r
        for r in subs
        if r["plan_id"].startswith("starter-") and not r["ended_at"] and r["started_at"] < "2026-10-01"
        and sum(1 for s in subs if s["subscription_id"] == r["subscription_id"]) == 1
    )  # fmt: skip
    sid = row["subscription_id"]
    token_price = next(
        Decimal(c["unit_price"])
        for c in catalog.files["price_components.csv"]
        if c["plan_id"] == row["plan_id"] and c["metric_code"] == "llm_tokens"
    )
    draft = f"D-202610-{sid}"
    before = db.execute("select subtotal, total from marts.invoice_header where invoice_id = %s", [draft]).fetchone()
    _issue(db, draft, ISSUED_AT)

    # 250,000 tokens of October arrive after the invoice was issued.
    late_hour = datetime(2026, 10, 20, 13, tzinfo=UTC)
    db.execute(
        'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties, "timestamp",'
        " source_file, line_no, partition_date, loaded_at)"
        " values (%s, 'late-1', %s, 'llm.completion', '{\"tokens\": 250000}', %s, 'events/late.jsonl', 1,"
        " '2026-10-20', %s)",
        [uuid.uuid4(), sid, late_hour + timedelta(minutes=5), LATE_LOADED_AT],
    )
    late = (sid, "llm_tokens", late_hour, Decimal(250000))
    put_usage(db, [late])
    rebuild_invoices(warehouse_url, as_of=REBUILT)

    through = date(2026, 11, 1)  # the month of REBUILT: the last draft built
    without = price_catalog(catalog.files, usage, through=through)[draft]
    with_late = price_catalog(catalog.files, [*usage, late], through=through)[draft]
    expected = sum((ln.amount for ln in with_late.lines if ln.kind != "credit"), Decimal(0)) - sum(
        (ln.amount for ln in without.lines if ln.kind != "credit"), Decimal(0)
    )
    assert expected == 250000 * token_price  # per unit, above the included units, exact in every currency

    # The issued month keeps its issued figures.
    status = db.execute(
        "select status, subtotal, total, invoice_number from marts.invoice_header where invoice_id = %s", [draft]
    ).fetchone()
    assert status == ("issued", before[0], before[1], "INV-2026-000001")
    # The next month carries the adjustment, exactly the repriced difference.
    next_draft = f"D-202611-{sid}"
    adjustments = db.execute(
        "select metric_code, quantity, amount, description from marts.invoice_draft_lines"
        " where invoice_id = %s and kind = 'adjustment'",
        [next_draft],
    ).fetchall()
    assert [(m, q, a) for m, q, a, _ in adjustments] == [("llm_tokens", Decimal(250000), expected)]
    assert adjustments[0][3] == "late usage for 2026-10 (INV-2026-000001): usage llm_tokens, 1 late events"
