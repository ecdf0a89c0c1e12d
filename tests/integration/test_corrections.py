"""Corrections on issued invoices: void and regenerate, credit notes, manual credits. Never an
edit of an issued document; every action audited; balances follow."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from _issued import pay_in_full
from handwritten_month import PERIOD, SUB, catalog_never_had, pass_gate

from meterline import close
from meterline.invoicing import corrections
from meterline.invoicing.corrections import CorrectionRefused
from meterline.invoicing.emit import emit
from meterline.invoicing.gate import GateFailed

pytestmark = pytest.mark.integration

ISSUED_AT = datetime(2025, 4, 2, 9, 30, tzinfo=UTC)
LATER = datetime(2025, 4, 10, 15, 0, tzinfo=UTC)


@pytest.fixture
def outbox(tmp_path: Path) -> str:
    return str(tmp_path / "outbox")


@pytest.fixture
def month(gated_month_url: str) -> str:
    """A copy of the month after the suites and a gate that passed (handwritten_month.pass_gate)."""
    return gated_month_url


@pytest.fixture
def db(gated_month_db: psycopg.Connection) -> psycopg.Connection:
    return gated_month_db


@pytest.fixture
def issued(month: str, outbox: str) -> str:
    emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    return month


def audit_actions(db: psycopg.Connection) -> list[tuple[str, str, str]]:
    return db.execute(
        "select action, resource, actor from ops.audit_log"
        " where split_part(action, '.', 1) in ('invoice', 'credit', 'credit_note') order by audit_id"
    ).fetchall()


def test_void_and_regenerate_issues_a_new_number_from_current_data(issued, db, outbox):
    # Usage was under-counted: 500,000 more tokens of March reach the warehouse late, and dbt
    # now prices 2,000,000 tokens for t-0001: 100.00 + 40.00, tax 14.00, total 154.00.
    db.execute(
        'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties, "timestamp",'
        " source_file, line_no, partition_date) values (gen_random_uuid(), 'chat-missed', %s,"
        " 'chat.message', '{\"tokens\": 500000}', '2025-03-28T10:00:00Z', 'events/replayed.jsonl', 1,"
        " '2025-03-28')",
        [SUB["t-0001"]],
    )
    close.build(issued, PERIOD)
    done = corrections.void_and_regenerate(
        issued, "INV-2025-000001", reason="tokens under-counted (INC-7)", actor="ops:bob", outbox_url=outbox,
        issued_at=LATER,
    )  # fmt: skip

    assert done.resource == "invoice:INV-2025-000004"
    rows = db.execute(
        "select invoice_number, status, total, void_reason, voided_by, voided_at is not null,"
        " (select invoice_number from billing.invoices r where r.invoice_id = i.replaces_invoice_id)"
        " from billing.invoices i where tenant_id = 't-0001' order by i.invoice_number"
    ).fetchall()
    assert rows == [
        ("INV-2025-000001", "void", Decimal("143.00"), "tokens under-counted (INC-7)", "ops:bob", True, None),
        ("INV-2025-000004", "issued", Decimal("154.00"), None, None, False, "INV-2025-000001"),
    ]
    body = json.loads(Path(outbox, "invoices/2025-03/INV-2025-000004.json").read_text())
    assert (body["total"], body["references"]) == ("154.00", {"replaces_invoice": "INV-2025-000001"})
    assert Path(outbox, "invoices/2025-03/INV-2025-000001.pdf").exists()  # the voided document stays
    assert db.execute(
        "select invoice_number, balance_due from billing.invoice_balances where tenant_id = 't-0001'"
        " order by invoice_number"
    ).fetchall() == [("INV-2025-000001", Decimal("0")), ("INV-2025-000004", Decimal("154.00"))]
    assert audit_actions(db)[-3:] == [
        ("invoice.voided", "invoice:INV-2025-000001", "ops:bob"),
        ("invoice.issued", "invoice:INV-2025-000004", "ops:bob"),
        ("invoice.regenerated", "invoice:INV-2025-000004", "ops:bob"),
    ]
    # The emitter re-run leaves the regenerated period alone.
    assert emit(issued, PERIOD, outbox).issued == []
    assert db.execute("select count(*) from billing.invoices").fetchone() == (4,)


def test_void_alone_is_not_reissued_by_the_emitter_and_regenerate_needs_a_void(issued, db, outbox):
    with pytest.raises(CorrectionRefused, match="void it before regenerating"):
        corrections.regenerate_invoice(issued, "INV-2025-000002", actor="ops:bob", outbox_url=outbox)
    corrections.void_invoice(issued, "INV-2025-000002", reason="duplicate customer account", actor="ops:bob")
    assert emit(issued, PERIOD, outbox).issued == []
    with pytest.raises(CorrectionRefused, match="void already"):
        corrections.void_invoice(issued, "INV-2025-000002", reason="again", actor="ops:bob")
    done = corrections.regenerate_invoice(
        issued, "INV-2025-000002", actor="ops:bob", outbox_url=outbox, issued_at=LATER
    )
    assert done.resource == "invoice:INV-2025-000004"
    assert db.execute("select status from billing.invoices order by invoice_number").fetchall() == [
        ("issued",), ("void",), ("issued",), ("issued",)
    ]  # fmt: skip


def test_void_and_regenerate_is_atomic_when_the_draft_cannot_be_issued(issued, db, outbox):
    catalog_never_had(db, "tax_rates", "country = %s", ["JP"])
    close.build(issued, PERIOD)
    with pytest.raises(CorrectionRefused, match="pricing configuration error: no tax rate for country JP"):
        corrections.void_and_regenerate(
            issued, "INV-2025-000003", reason="re-price", actor="ops:bob", outbox_url=outbox
        )
    assert db.execute("select status from billing.invoices where invoice_number = 'INV-2025-000003'").fetchone() == (
        "issued",
    )
    assert db.execute("select count(*) from ops.audit_log where action = 'invoice.voided'").fetchone() == (0,)


def test_credit_notes_partial_then_full_add_up_to_the_invoice(issued, db, outbox):
    # INV-2025-000002: EUR, pre-tax 212.35 - 10.00 = 202.35, tax 38.45, total 240.80.
    first = corrections.issue_credit_note(
        issued, "INV-2025-000002", reason="SLA breach 2025-03-12", actor="ops:carol", amount=Decimal("50"),
        outbox_url=outbox, issued_at=LATER,
    )  # fmt: skip
    assert first.details == {"total": Decimal("-59.50"), "number": "CN-2025-000001"}  # tax 50 x 38.45/202.35 = 9.50
    with pytest.raises(CorrectionRefused, match=r"exceeds what is left to credit on INV-2025-000002: 152\.35 EUR"):
        corrections.issue_credit_note(issued, "INV-2025-000002", reason="x", actor="ops:carol", amount=Decimal("200"))
    rest = corrections.issue_credit_note(
        issued, "INV-2025-000002", reason="account closed", actor="ops:carol", outbox_url=outbox, issued_at=LATER
    )
    assert rest.details == {"total": Decimal("-181.30"), "number": "CN-2025-000002"}  # 152.35 + the 28.95 tax left
    notes = db.execute(
        "select credit_note_number, subtotal, tax, total, reason, created_by from billing.credit_notes"
        " order by credit_note_number"
    ).fetchall()
    assert notes == [
        (
            "CN-2025-000001",
            Decimal("-50.00"),
            Decimal("-9.50"),
            Decimal("-59.50"),
            "SLA breach 2025-03-12",
            "ops:carol",
        ),
        ("CN-2025-000002", Decimal("-152.35"), Decimal("-28.95"), Decimal("-181.30"), "account closed", "ops:carol"),
    ]
    assert db.execute(
        "select total, credited, balance_due from billing.invoice_balances where invoice_number = 'INV-2025-000002'"
    ).fetchone() == (Decimal("240.80"), Decimal("-240.80"), Decimal("0.00"))
    body = json.loads(Path(outbox, "credit_notes/2025-03/CN-2025-000001.json").read_text())
    assert (body["kind"], body["total"], body["references"]) == (
        "credit_note", "-59.50", {"credited_invoice": "INV-2025-000002"},
    )  # fmt: skip
    assert [(line["description"], line["amount"]) for line in body["lines"]] == [
        ("Credit against invoice INV-2025-000002", "-50.00")
    ]
    # The operator's reason is recorded (above, and in the audit log), never sent to the customer.
    assert "SLA breach" not in Path(outbox, "credit_notes/2025-03/CN-2025-000001.json").read_text()
    pdf = Path(outbox, "credit_notes/2025-03/CN-2025-000002.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Credit against invoice INV-2025-000002" in text and "account closed" not in text
    with pytest.raises(CorrectionRefused, match="must be positive"):
        corrections.issue_credit_note(issued, "INV-2025-000002", reason="again", actor="ops:carol")
    assert [a for a in audit_actions(db) if a[0] == "credit_note.issued"] == [
        ("credit_note.issued", "credit_note:CN-2025-000001", "ops:carol"),
        ("credit_note.issued", "credit_note:CN-2025-000002", "ops:carol"),
    ]
    # The invoice itself never changed.
    original = "select status, total from billing.invoices where invoice_number = 'INV-2025-000002'"
    assert db.execute(original).fetchone() == ("issued", Decimal("240.80"))


def test_manual_credit_reduces_the_next_invoice_and_the_rest_carries_forward(month, db, outbox):
    corrections.grant_credit(month, "t-0001", Decimal("50"), reason="goodwill for outage", actor="ops:dave")
    corrections.grant_credit(month, "t-0001", Decimal("100"), reason="migration help", actor="ops:dave")
    with pytest.raises(GateFailed, match=r"data changed since the gate .*\(credit_grants 0 -> 2\)"):
        emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    close.build(month, PERIOD)  # dbt applies the grants to the drafts (it computes every figure)
    pass_gate(month)
    emit(month, PERIOD, outbox, issued_at=ISSUED_AT)

    # 130.00 pre-tax: 50.00 + 80.00 of the grants; tax on 0.00; never negative; 20.00 left.
    invoice = db.execute(
        "select subtotal, credits, tax, total from billing.invoices where tenant_id = 't-0001'"
    ).fetchone()
    assert invoice == (Decimal("130.00"), Decimal("130.00"), Decimal("0.00"), Decimal("0.00"))
    lines = db.execute(
        "select l.line_no, l.kind, l.description, l.amount from billing.invoice_line_items l"
        " join billing.invoices i using (invoice_id) where i.tenant_id = 't-0001' order by line_no"
    ).fetchall()
    assert lines[2:] == [
        (3, "credit", "Manual credit: goodwill for outage", Decimal("-50.00")),
        (4, "credit", "Manual credit: migration help", Decimal("-80.00")),
    ]
    balance = "select granted, applied, remaining from billing.credit_balances where tenant_id = 't-0001'"
    assert db.execute(balance).fetchone() == (Decimal("150.00"), Decimal("130.00"), Decimal("20.00"))
    assert [a for a in audit_actions(db) if a[0].startswith("credit.")] == [
        ("credit.granted", "tenant:t-0001", "ops:dave"),
        ("credit.granted", "tenant:t-0001", "ops:dave"),
        ("credit.applied", "invoice:INV-2025-000001", "emitter"),
        ("credit.applied", "invoice:INV-2025-000001", "emitter"),
    ]
    body = json.loads(Path(outbox, "invoices/2025-03/INV-2025-000001.json").read_text())
    assert (body["credits"], body["total"]) == ("130.00", "0.00")
    # Other tenants are untouched.
    assert db.execute("select total from billing.invoices where tenant_id = 't-0002'").fetchone() == (
        Decimal("240.80"),
    )


def test_partial_manual_credit_recomputes_tax_on_the_reduced_amount(month, db, outbox):
    corrections.grant_credit(month, "t-0002", Decimal("20.005"), reason="rounding test", actor="ops:dave")
    close.build(month, PERIOD)
    pass_gate(month)
    emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    # 212.35 - 10.00 - 20.01 = 182.34 pre-tax; 19 % = 34.6446 -> 34.64; total 216.98.
    assert db.execute("select credits, tax, total from billing.invoices where tenant_id = 't-0002'").fetchone() == (
        Decimal("30.01"),
        Decimal("34.64"),
        Decimal("216.98"),
    )


def test_corrections_are_refused_without_actor_reason_or_on_a_paid_invoice(issued, db):
    with pytest.raises(CorrectionRefused, match="actor"):
        corrections.void_invoice(issued, "INV-2025-000001", reason="x", actor="")
    with pytest.raises(CorrectionRefused, match="reason"):
        corrections.issue_credit_note(issued, "INV-2025-000001", reason=" ", actor="ops:bob")
    with pytest.raises(CorrectionRefused, match="no issued invoice INV-2025-000999"):
        corrections.void_invoice(issued, "INV-2025-000999", reason="x", actor="ops:bob")
    pay_in_full(db, "INV-2025-000001", actor="ops:erin")
    with pytest.raises(CorrectionRefused, match="is paid"):
        corrections.void_invoice(issued, "INV-2025-000001", reason="x", actor="ops:bob")
    with pytest.raises(CorrectionRefused, match="unknown tenant"):
        corrections.grant_credit(issued, "t-9999", Decimal("5"), reason="x", actor="ops:bob")
    assert audit_actions(db) == [
        *[("invoice.issued", f"invoice:INV-2025-00000{n}", "emitter") for n in (1, 2, 3)],
        ("invoice.paid", "invoice:INV-2025-000001", "ops:erin"),
    ]


def test_a_dispute_changes_the_status_only_and_is_settled_or_voided(issued, db):
    def state(number: str) -> tuple:
        return db.execute(
            "select status, content_hash, total from billing.invoices where invoice_number = %s", [number]
        ).fetchone()

    before = state("INV-2025-000001")
    done = corrections.dispute_invoice(issued, "INV-2025-000001", reason="3 days of outage", actor="ops:bob")
    assert done.action == "invoice.disputed"
    assert state("INV-2025-000001") == ("disputed", *before[1:])  # the document is untouched
    with pytest.raises(CorrectionRefused, match="INV-2025-000001 is disputed, not issued"):
        corrections.dispute_invoice(issued, "INV-2025-000001", reason="again", actor="ops:bob")
    with pytest.raises(CorrectionRefused, match="INV-2025-000002 is issued, not disputed"):
        corrections.resolve_dispute(issued, "INV-2025-000002", reason="x", actor="ops:bob")
    with pytest.raises(CorrectionRefused, match="reason"):
        corrections.resolve_dispute(issued, "INV-2025-000001", reason=" ", actor="ops:bob")
    corrections.apply(
        issued, {"action": "resolve_dispute", "invoice_number": "INV-2025-000001", "reason": "logs show uptime",
                 "actor": "ops:alice"},
    )  # fmt: skip
    assert state("INV-2025-000001") == before

    # A dispute that turns out right: the disputed invoice is voided like an issued one.
    corrections.dispute_invoice(issued, "INV-2025-000002", reason="wrong plan", actor="ops:bob")
    corrections.void_invoice(issued, "INV-2025-000002", reason="wrong plan", actor="ops:bob")
    assert state("INV-2025-000002")[0] == "void"
    pay_in_full(db, "INV-2025-000003", actor="ops:erin")
    with pytest.raises(CorrectionRefused, match="INV-2025-000003 is paid, not issued"):
        corrections.dispute_invoice(issued, "INV-2025-000003", reason="late", actor="ops:bob")

    assert audit_actions(db)[3:] == [
        ("invoice.disputed", "invoice:INV-2025-000001", "ops:bob"),
        ("invoice.dispute_resolved", "invoice:INV-2025-000001", "ops:alice"),
        ("invoice.disputed", "invoice:INV-2025-000002", "ops:bob"),
        ("invoice.voided", "invoice:INV-2025-000002", "ops:bob"),
        ("invoice.paid", "invoice:INV-2025-000003", "ops:erin"),
    ]
    reasons = db.execute(
        "select metadata ->> 'reason', metadata ->> 'previous_status' from ops.audit_log"
        " where action like 'invoice.dispute%' order by audit_id"
    ).fetchall()
    assert reasons == [("3 days of outage", "issued"), ("logs show uptime", "disputed"), ("wrong plan", "issued")]
