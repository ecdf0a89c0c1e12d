"""Issued billing documents written the way the pipeline may write them (090_billing_owner.sql):
a new document, its lines and its content hash in one transaction; status changes only through
the audited functions. For tests that need issued invoices without running the emitter."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def issue_invoice(
    db: psycopg.Connection,
    number: str,
    tenant_id: str,
    currency: str,
    total: Decimal | str,
    *,
    issued_at: datetime | str = "2025-04-02T09:00:00Z",
    period_start: str = "2025-03-01",
    period_end: str = "2025-04-01",
    subscription_id: uuid.UUID | None = None,
    draft_id: str | None = None,
    lines: Sequence[dict[str, Any]] = (),
) -> uuid.UUID:
    """One issued invoice (subtotal = total, no credits or tax) with `lines`, sealed and committed."""
    invoice_id = uuid.uuid4()
    subscription_id = subscription_id or uuid.uuid4()
    with db.transaction():
        db.execute(
            "insert into billing.invoices (invoice_id, invoice_number, draft_id, tenant_id, subscription_id,"
            " period_start, period_end, currency, subtotal, credits, tax, total, status, issued_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0, %s, 'issued', %s)",
            [invoice_id, number, draft_id or f"D-{number}", tenant_id, subscription_id, period_start, period_end,
             currency, Decimal(total), Decimal(total), issued_at],
        )  # fmt: skip
        for no, line in enumerate(lines, start=1):
            db.execute(
                "insert into billing.invoice_line_items (invoice_id, line_no, kind, metric_code, description,"
                " quantity, unit_price, amount) values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [invoice_id, line.get("line_no", no), line.get("kind", "usage"), line.get("metric_code"),
                 line.get("description", f"{number} line {no}"), line.get("quantity"), line.get("unit_price"),
                 Decimal(line["amount"])],
            )  # fmt: skip
        db.execute("select billing.seal_invoice(%s)", [invoice_id])
    return invoice_id


def pay_in_full(db: psycopg.Connection, invoice_number: str, *, actor: str = "ops:test") -> None:
    """A succeeded payment of the invoice's total, applied, and the invoice marked paid (audited)."""
    with db.transaction():
        invoice_id, total, currency = db.execute(
            "select invoice_id, total, currency from billing.invoices where invoice_number = %s", [invoice_number]
        ).fetchone()
        payment_id = f"pay-{invoice_number}"
        db.execute(
            "insert into billing.payment_txn (payment_id, status, invoice_number, invoice_id, amount, currency,"
            " paid_at, match_status, source_file, line_no)"
            " values (%s, 'succeeded', %s, %s, %s, %s, now(), 'applied', 'test', 1)",
            [payment_id, invoice_number, invoice_id, total, currency],
        )
        db.execute(
            "select billing.mark_invoice_paid(%s, %s, %s, %s)",
            [invoice_id, [payment_id], actor, Jsonb({"paid": str(total), "currency": currency})],
        )
