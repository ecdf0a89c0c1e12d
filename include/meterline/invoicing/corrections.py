"""The operations runbook's corrections. None edits an issued document:

- void an issued invoice (reason, who, when), and regenerate it from the current drafts under a
  new number that references the voided one (`void_and_regenerate` does both atomically);
- issue a credit note: a negative document referencing the invoice, for part of its pre-tax
  amount (tax credited pro rata) or all that is left of it;
- grant a manual credit, which dbt applies to the tenant's next drafts (invoice_drafts) and the
  emitter copies at issue;
- mark an issued invoice disputed (the tenant contests it), and settle the dispute with the
  invoice standing (`resolve_dispute`: back to issued) or by a credit note or void and regenerate.

Every action writes `ops.audit_log` in the same transaction as the change it records.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from meterline import audit, config, warehouse
from meterline.errors import InputError
from meterline.invoicing import publish
from meterline.invoicing.actions import ACTIONS, missing
from meterline.invoicing.documents import Document, Line
from meterline.invoicing.emit import DraftInvalid, _lock_period_shared, issue_draft
from meterline.invoicing.numbering import next_number
from meterline.landing import Zone, outbox
from meterline.money import parse_amount, round_money
from meterline.period import Period


class CorrectionRefused(InputError):
    """The correction cannot be applied as asked; the message says why and what to do."""


@dataclass
class Correction:
    action: str
    resource: str
    documents: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _require_actor_reason(actor: str, reason: str | None = None, *, needs_reason: bool = True) -> None:
    if not (actor or "").strip():
        raise CorrectionRefused("every correction names its actor (who is doing it)")
    if needs_reason and not (reason or "").strip():
        raise CorrectionRefused("every correction states its reason")


def _locked_invoice(conn: psycopg.Connection, invoice_number: str) -> dict[str, Any]:
    row = (
        conn.cursor(row_factory=dict_row)
        .execute("select * from billing.lock_invoices(array[%s])", [invoice_number])
        .fetchone()
    )
    if row is None:
        raise CorrectionRefused(f"no issued invoice {invoice_number} (see billing.invoices)")
    return row


def _void(conn: psycopg.Connection, invoice_number: str, *, reason: str, actor: str) -> dict[str, Any]:
    invoice = _locked_invoice(conn, invoice_number)
    if invoice["status"] == "void":
        raise CorrectionRefused(f"invoice {invoice_number} is void already (since {invoice['voided_at']})")
    if invoice["status"] == "paid":
        raise CorrectionRefused(
            f"invoice {invoice_number} is paid: refund it or issue a credit note instead of voiding it"
        )
    # Voids and writes `invoice.voided` to ops.audit_log (090_billing_owner.sql).
    conn.execute("select billing.void_invoice(%s, %s, %s)", [invoice["invoice_id"], reason, actor])
    return invoice


def void_invoice(conninfo: str, invoice_number: str, *, reason: str, actor: str) -> Correction:
    _require_actor_reason(actor, reason)
    with warehouse.transaction(conninfo) as conn:
        invoice = _void(conn, invoice_number, reason=reason, actor=actor)
    return Correction("invoice.voided", f"invoice:{invoice_number}", details={"invoice_id": str(invoice["invoice_id"])})


def _regenerate(
    conn: psycopg.Connection, voided: dict[str, Any], *, actor: str, zone: Zone, issued_at: datetime | None
) -> tuple[Correction, list[publish.Staged]]:
    """Issue the voided month's current draft inside the caller's transaction; the caller
    publishes the staged documents after its commit."""
    period = Period.parse(voided["period_start"])
    _lock_period_shared(conn, period)
    try:
        issued = issue_draft(
            conn,
            voided["draft_id"],
            zone,
            actor=actor,
            issued_at=issued_at,
            replaces_invoice_id=voided["invoice_id"],
            allow_after_void=True,
        )
    except DraftInvalid as exc:
        raise CorrectionRefused(f"cannot regenerate {voided['invoice_number']}: {exc}") from exc
    if issued is None:
        raise CorrectionRefused(
            f"subscription {voided['subscription_id']} already has a live invoice for {period}: nothing to regenerate"
        )
    audit.record(
        conn,
        actor=actor,
        action="invoice.regenerated",
        resource=f"invoice:{issued.number}",
        metadata={"replaces": voided["invoice_number"], "replaces_invoice_id": str(voided["invoice_id"])},
    )
    done = Correction("invoice.regenerated", f"invoice:{issued.number}", details={"replaces": voided["invoice_number"]})
    return done, issued.staged


def regenerate_invoice(
    conninfo: str,
    invoice_number: str,
    *,
    actor: str,
    outbox_url: str | None = None,
    issued_at: datetime | None = None,
) -> Correction:
    """Issue a new invoice, under a new number, from the current draft of a voided invoice."""
    _require_actor_reason(actor, needs_reason=False)
    zone = outbox(outbox_url)
    with warehouse.transaction(conninfo) as conn:
        voided = _locked_invoice(conn, invoice_number)
        if voided["status"] != "void":
            raise CorrectionRefused(f"invoice {invoice_number} is {voided['status']}: void it before regenerating it")
        done, staged = _regenerate(conn, voided, actor=actor, zone=zone, issued_at=issued_at)
    done.documents = publish.publish(zone, staged)
    return done


def void_and_regenerate(
    conninfo: str,
    invoice_number: str,
    *,
    reason: str,
    actor: str,
    outbox_url: str | None = None,
    issued_at: datetime | None = None,
) -> Correction:
    """Void and regenerate in one transaction: if the new invoice cannot be issued, the old stays."""
    _require_actor_reason(actor, reason)
    zone = outbox(outbox_url)
    with warehouse.transaction(conninfo) as conn:
        _void(conn, invoice_number, reason=reason, actor=actor)
        voided = _locked_invoice(conn, invoice_number)
        done, staged = _regenerate(conn, voided, actor=actor, zone=zone, issued_at=issued_at)
    done.documents = publish.publish(zone, staged)
    return done


def issue_credit_note(
    conninfo: str,
    invoice_number: str,
    *,
    reason: str,
    actor: str,
    amount: Decimal | None = None,
    outbox_url: str | None = None,
    issued_at: datetime | None = None,
) -> Correction:
    """Credit `amount` of the invoice's pre-tax amount (None: all that is not credited yet).

    Tax is credited in proportion; the last credit note takes exactly the tax left, so full
    credit notes always add up to the invoice's total.
    """
    _require_actor_reason(actor, reason)
    with warehouse.transaction(conninfo) as conn:
        invoice = _locked_invoice(conn, invoice_number)
        if invoice["status"] == "void":
            raise CorrectionRefused(f"invoice {invoice_number} is void: a void invoice is not owed, nothing to credit")
        currency = invoice["currency"]
        credited_net, credited_tax = conn.execute(
            "select coalesce(-sum(subtotal), 0), coalesce(-sum(tax), 0) from billing.credit_notes"
            " where invoice_id = %s",
            [invoice["invoice_id"]],
        ).fetchone()
        net = invoice["subtotal"] - invoice["credits"]
        net_left, tax_left = net - credited_net, invoice["tax"] - credited_tax
        if amount is None:
            amount = net_left
        amount = round_money(Decimal(amount), currency)
        if amount <= 0:
            raise CorrectionRefused(f"credit amount must be positive (invoice {invoice_number} has {net_left} left)")
        if amount > net_left:
            raise CorrectionRefused(
                f"credit {amount} {currency} exceeds what is left to credit on {invoice_number}: {net_left} {currency}"
            )
        tax = tax_left if amount == net_left else round_money(amount * invoice["tax"] / net, currency)
        issued_at = issued_at or datetime.now(UTC)
        number = next_number(conn, "CN", issued_at.year)
        note_id = uuid.uuid4()
        # The customer reads "credit against invoice N"; the operator's reason stays with the credit
        # note's row (billing.credit_notes.reason) and the audit log, never on the document.
        line = Line(1, "credit", f"Credit against invoice {invoice_number}", -amount)
        # Addressed as the invoice was (its buyer, tax country and rate), from the seller configured now.
        settings = config.settings()
        parties = {
            "buyer_address": invoice["buyer_address"],
            "buyer_vat_id": invoice["buyer_vat_id"],
            "country": invoice["country"],
            "tax_rate": invoice["tax_rate"],
            "seller_name": settings.seller_name,
            "seller_address": settings.seller_address,
            "seller_vat_id": settings.seller_vat_id,
        }
        conn.execute(
            "insert into billing.credit_notes (credit_note_id, credit_note_number, invoice_id, tenant_id, tenant_name,"
            " billing_email, currency, subtotal, tax, total, reason, created_by, issued_at, buyer_address,"
            " buyer_vat_id, country, tax_rate, seller_name, seller_address, seller_vat_id)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                note_id, number, invoice["invoice_id"], invoice["tenant_id"], invoice["tenant_name"],
                invoice["billing_email"], currency, -amount, -tax, -(amount + tax), reason, actor, issued_at,
                *parties.values(),
            ],
        )  # fmt: skip
        conn.execute(
            "insert into billing.credit_note_lines (credit_note_id, line_no, description, amount)"
            " values (%s, 1, %s, %s)",
            [note_id, line.description, line.amount],
        )
        (content_hash,) = conn.execute("select billing.seal_credit_note(%s)", [note_id]).fetchone()
        doc = Document(
            kind="credit_note",
            number=number,
            document_id=str(note_id),
            tenant_id=invoice["tenant_id"],
            tenant_name=invoice["tenant_name"],
            billing_email=invoice["billing_email"],
            subscription_id=str(invoice["subscription_id"]),
            period_start=invoice["period_start"],
            period_end=invoice["period_end"],
            currency=currency,
            subtotal=-amount,
            credits=Decimal(0),
            tax=-tax,
            total=-(amount + tax),
            issued_at=issued_at,
            lines=(line,),
            content_hash=content_hash,
            references={"credited_invoice": invoice_number},
            **parties,
        )
        zone = outbox(outbox_url)
        staged = publish.stage(zone, doc)
        uris = [zone.uri(item.final) for item in staged]
        audit.record(
            conn,
            actor=actor,
            action="credit_note.issued",
            resource=f"credit_note:{number}",
            metadata={
                "invoice": invoice_number,
                "reason": reason,
                "subtotal": str(doc.subtotal),
                "tax": str(doc.tax),
                "total": str(doc.total),
                "currency": currency,
                "content_hash": doc.content_hash,
                "documents": uris,
            },
        )
    uris = publish.publish(zone, staged)
    return Correction("credit_note.issued", f"credit_note:{number}", uris, {"total": doc.total, "number": number})


def grant_credit(
    conninfo: str,
    tenant_id: str,
    amount: Decimal,
    *,
    reason: str,
    actor: str,
    currency: str | None = None,
) -> Correction:
    """A manual credit for the tenant's next invoices (in the tenant's currency unless named)."""
    _require_actor_reason(actor, reason)
    amount = Decimal(amount)
    with warehouse.transaction(conninfo) as conn:
        row = conn.execute("select currency from raw.catalog_tenants where tenant_id = %s", [tenant_id]).fetchone()
        if row is None:
            raise CorrectionRefused(f"unknown tenant {tenant_id} (see raw.catalog_tenants)")
        currency = currency or row[0]
        amount = round_money(amount, currency)
        if amount <= 0:
            raise CorrectionRefused("a manual credit is a positive amount")
        grant_id = uuid.uuid4()
        conn.execute(
            "insert into billing.credit_grants (grant_id, tenant_id, amount, currency, reason, created_by)"
            " values (%s, %s, %s, %s, %s, %s)",
            [grant_id, tenant_id, amount, currency, reason, actor],
        )
        audit.record(
            conn,
            actor=actor,
            action="credit.granted",
            resource=f"tenant:{tenant_id}",
            metadata={"grant_id": str(grant_id), "amount": str(amount), "currency": currency, "reason": reason},
        )
    return Correction("credit.granted", f"tenant:{tenant_id}", details={"grant_id": str(grant_id), "amount": amount})


def _change_status(
    conninfo: str, invoice_number: str, *, reason: str, actor: str, before: str, function: str, action: str
) -> Correction:
    _require_actor_reason(actor, reason)
    with warehouse.transaction(conninfo) as conn:
        invoice = _locked_invoice(conn, invoice_number)
        if invoice["status"] != before:
            raise CorrectionRefused(f"invoice {invoice_number} is {invoice['status']}, not {before}")
        # Changes the status and writes `action` to ops.audit_log (090_billing_owner.sql).
        conn.execute(
            sql.SQL("select billing.{}(%s, %s, %s)").format(sql.Identifier(function)),
            [invoice["invoice_id"], reason, actor],
        )
    return Correction(action, f"invoice:{invoice_number}", details={"invoice_id": str(invoice["invoice_id"])})


def dispute_invoice(conninfo: str, invoice_number: str, *, reason: str, actor: str) -> Correction:
    """The tenant contests an issued, unpaid invoice: status `disputed` (the document stays as it
    is). Settle it with `resolve_dispute` (the invoice stands), a credit note (part of it was
    wrong) or void and regenerate (it was wrong); a payment in full settles it as paid."""
    return _change_status(
        conninfo, invoice_number, reason=reason, actor=actor, before="issued", function="dispute_invoice",
        action="invoice.disputed",
    )  # fmt: skip


def resolve_dispute(conninfo: str, invoice_number: str, *, reason: str, actor: str) -> Correction:
    """The dispute is settled with the invoice standing: back to `issued`, owed as before."""
    return _change_status(
        conninfo, invoice_number, reason=reason, actor=actor, before="disputed", function="resolve_invoice_dispute",
        action="invoice.dispute_resolved",
    )  # fmt: skip


def apply(conninfo: str, params: dict[str, Any], *, outbox_url: str | None = None) -> Correction:
    """One correction from plain parameters (the `correct_invoice` DAG's params, the CLI)."""
    action = params.get("action")
    if action not in ACTIONS:
        raise CorrectionRefused(f"unknown correction {action!r}: one of {', '.join(ACTIONS)}")
    if absent := missing(params):
        raise CorrectionRefused(f"{action} needs {', '.join(absent)}: {ACTIONS[action].summary}")
    actor = params.get("actor") or ""
    reason = params.get("reason") or ""
    number = params.get("invoice_number") or ""
    amount = params.get("amount")
    amount = None if amount in (None, "") else parse_amount(amount)
    if action == "void":
        return void_invoice(conninfo, number, reason=reason, actor=actor)
    if action == "regenerate":
        return regenerate_invoice(conninfo, number, actor=actor, outbox_url=outbox_url)
    if action == "void_and_regenerate":
        return void_and_regenerate(conninfo, number, reason=reason, actor=actor, outbox_url=outbox_url)
    if action == "credit_note":
        return issue_credit_note(conninfo, number, reason=reason, actor=actor, amount=amount, outbox_url=outbox_url)
    if action == "dispute":
        return dispute_invoice(conninfo, number, reason=reason, actor=actor)
    if action == "resolve_dispute":
        return resolve_dispute(conninfo, number, reason=reason, actor=actor)
    if action == "credit":
        return grant_credit(
            conninfo, params.get("tenant_id") or "", amount, reason=reason, actor=actor, currency=params.get("currency")
        )
    raise AssertionError(f"{action} is in ACTIONS and has no branch here")
