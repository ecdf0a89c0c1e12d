"""The corrections an operator can ask for, and what each needs: one table for the `correct_invoice`
DAG's form, the `meterline invoice <action>` commands and the check in `corrections.apply`.

Plain data, light to import (the DAG file reads it at parse time).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    summary: str
    needs: tuple[str, ...]  # params that must be given (besides `actor`, which every one needs)
    takes: tuple[str, ...] = ()  # params it reads when given
    documents: bool = False  # it issues a document (to the outbox)


ACTIONS: dict[str, Action] = {
    "void_and_regenerate": Action(
        "void the invoice and issue a new one (new number, replaces the old) from its current draft",
        ("invoice_number", "reason"),
        documents=True,
    ),
    "void": Action("void the invoice only (it is no longer owed)", ("invoice_number", "reason")),
    "regenerate": Action(
        "issue a new invoice for a void one, from its current draft", ("invoice_number",), documents=True
    ),
    "credit_note": Action(
        "a credit note against the invoice, for an amount or all that is left",
        ("invoice_number", "reason"),
        ("amount",),
        documents=True,
    ),
    "credit": Action(
        "a manual credit for a tenant, applied to its next invoices", ("tenant_id", "amount", "reason"), ("currency",)
    ),
    "dispute": Action("the tenant contests an issued, unpaid invoice", ("invoice_number", "reason")),
    "resolve_dispute": Action("a disputed invoice stands after all (back to issued)", ("invoice_number", "reason")),
}

PARAMS: dict[str, str] = {
    "invoice_number": "the invoice number, e.g. INV-2025-000123",
    "tenant_id": "the tenant, e.g. t-0001",
    "amount": "an amount, e.g. 50.00 (credit_note: pre-tax, empty = all that is left)",
    "currency": "ISO 4217 code; empty = the tenant's currency",
    "reason": "why: recorded in the audit log",
}


def used_by(param: str) -> str:
    """Which actions need the param and which take it optionally, for a form's description."""
    needed = [name for name, action in ACTIONS.items() if param in action.needs]
    optional = [name for name, action in ACTIONS.items() if param in action.takes]
    parts = [f"needed by {', '.join(needed)}"] if needed else []
    parts += [f"optional for {', '.join(optional)}"] if optional else []
    return "; ".join(parts)


def missing(params: dict[str, object]) -> list[str]:
    """The params the action needs and the request leaves empty (`actor` first)."""
    action = ACTIONS[str(params["action"])]
    return [p for p in ("actor", *action.needs) if params.get(p) in (None, "") or not str(params[p]).strip()]
