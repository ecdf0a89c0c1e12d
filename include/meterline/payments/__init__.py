"""Payments: the processor's exports under `LANDING_URL/payments/`, loaded into
`billing.payment_txn` and matched to issued invoices (DESIGN.md, "Payments and budgets")."""

from __future__ import annotations

PREFIX = "payments"
SUFFIXES = (".csv", ".json")
STATUSES = ("succeeded", "failed", "refunded")
FIELDS = ("payment_id", "invoice_number", "amount", "currency", "status", "paid_at")
