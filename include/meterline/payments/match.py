"""Matching new payments to issued invoices: which pay, which are mismatches, which invoices
become `paid`. Pure decisions over the invoices' current state; `load` writes them.

Rules (DESIGN.md, "Payments and budgets"), applied to new payment states in `paid_at` order:
- a failed attempt changes nothing;
- a succeeded payment for an unknown invoice number, in another currency than the invoice, to a
  void invoice or to one already paid is a mismatch and pays nothing;
- otherwise it is applied: when the applied payments cover what is owed (total less credit
  notes) the invoice becomes `paid`; more than owed is an `overpaid` mismatch; less is an
  `underpaid` mismatch, resolved when a later payment completes the invoice;
- a refund of a payment that was itself a mismatch (same amount) settles that mismatch; any
  other refund is a `refund` mismatch for finance (credit note or re-invoice), and the invoice
  keeps its status: never a silent status change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from meterline.payments.read import Payment

_STATUS_ORDER = {"failed": 0, "succeeded": 1, "refunded": 2}


@dataclass
class Invoice:
    invoice_id: Any
    invoice_number: str
    status: str
    currency: str
    owed: Decimal  # total plus credit notes (negative): what the tenant has to pay
    period_start: date
    applied: Decimal = Decimal(0)
    applied_payments: list[str] = field(default_factory=list)

    @property
    def outstanding(self) -> Decimal:
        return self.owed - self.applied


@dataclass(frozen=True)
class Mismatch:
    payment_id: str
    status: str
    reason: str
    invoice_number: str
    invoice_id: Any
    period_start: date
    currency: str
    amount: Decimal
    detail: str


@dataclass
class Decisions:
    match_status: dict[tuple[str, str], str] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    # (payment_id, status) of earlier mismatches now resolved -> the payment key that resolved them
    resolved: dict[tuple[str, str], str] = field(default_factory=dict)
    paid: list[Invoice] = field(default_factory=list)


@dataclass(frozen=True)
class Earlier:
    """A succeeded payment state already decided (in the warehouse or earlier in this load)."""

    match_status: str
    amount: Decimal
    invoice_id: Any


def order(payments: list[Payment]) -> list[Payment]:
    return sorted(payments, key=lambda p: (p.paid_at, _STATUS_ORDER[p.status], p.payment_id))


def decide(
    payments: list[Payment],
    invoices: dict[str, Invoice],
    earlier: dict[str, Earlier],
    open_underpaid: dict[Any, list[tuple[str, str]]],
) -> Decisions:
    """Decide every new payment state, in order. `invoices` by number (mutated: applied amounts
    and statuses move as payments are applied); `earlier` succeeded states by payment_id;
    `open_underpaid` unresolved underpaid mismatches by invoice_id."""
    out = Decisions()

    def mismatch(p: Payment, reason: str, inv: Invoice | None, amount: Decimal, detail: str) -> None:
        out.match_status[p.key] = "mismatch"
        out.mismatches.append(
            Mismatch(
                payment_id=p.payment_id,
                status=p.status,
                reason=reason,
                invoice_number=p.invoice_number,
                invoice_id=inv.invoice_id if inv else None,
                period_start=inv.period_start if inv else p.paid_at.date().replace(day=1),
                currency=p.currency,
                amount=amount,
                detail=detail,
            )
        )

    def resolve_underpaid(inv: Invoice, by: Payment) -> None:
        for key in open_underpaid.pop(inv.invoice_id, []):
            out.resolved[key] = by.payment_id

    for p in order(payments):
        inv = invoices.get(p.invoice_number)
        what = f"{p.status} payment {p.payment_id} of {p.amount} {p.currency}"
        if p.status == "failed":
            out.match_status[p.key] = "not_applicable"
            continue
        if p.status == "refunded":
            original = earlier.get(p.payment_id)
            if original is not None and original.match_status == "mismatch" and original.amount == p.amount:
                out.match_status[p.key] = "not_applicable"
                out.resolved[(p.payment_id, "succeeded")] = f"{p.payment_id}:refunded"
                continue
            state = f"invoice {p.invoice_number} ({inv.status})" if inv else f"unknown invoice {p.invoice_number}"
            mismatch(p, "refund", inv, p.amount, f"{what} refunded on {state}: credit note or re-invoice to decide")
            continue
        if inv is None:
            mismatch(p, "unknown_invoice", None, p.amount, f"{what} for unknown invoice {p.invoice_number}")
        elif p.currency != inv.currency:
            mismatch(p, "currency", inv, p.amount, f"{what} for invoice {inv.invoice_number} billed in {inv.currency}")
        elif inv.status == "void":
            mismatch(p, "void_invoice", inv, p.amount, f"{what} for void invoice {inv.invoice_number}")
        elif inv.status == "paid":
            mismatch(p, "already_paid", inv, p.amount, f"{what} for invoice {inv.invoice_number}, already paid")
        else:
            outstanding = inv.outstanding
            inv.applied += p.amount
            inv.applied_payments.append(p.payment_id)
            out.match_status[p.key] = "applied"
            resolve_underpaid(inv, p)
            if p.amount >= outstanding:
                inv.status = "paid"
                out.paid.append(inv)
                if p.amount > outstanding:
                    mismatch(
                        p, "overpaid", inv, p.amount - outstanding,
                        f"{what} for invoice {inv.invoice_number}: {outstanding} was outstanding, "
                        f"overpaid by {p.amount - outstanding}",
                    )  # fmt: skip
                    out.match_status[p.key] = "applied"
            else:
                mismatch(
                    p, "underpaid", inv, outstanding - p.amount,
                    f"{what} for invoice {inv.invoice_number} ({inv.owed} owed): "
                    f"{outstanding - p.amount} still outstanding",
                )  # fmt: skip
                out.match_status[p.key] = "applied"
                open_underpaid.setdefault(inv.invoice_id, []).append(p.key)
        earlier[p.payment_id] = Earlier(out.match_status[p.key], p.amount, inv.invoice_id if inv else None)
    return out
