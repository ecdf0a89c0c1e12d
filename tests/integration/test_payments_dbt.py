"""The payment models through real dbt: recon_exceptions shows every open payment mismatch
(category Payment), rpt_payment_reconciliation joins invoice_header with the payments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from test_payments import INVOICES, VOID, issue

from meterline import transform
from meterline.payments.load import load_payments
from meterline.synthetic.payments import generate_payments

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_mismatches_reach_recon_exceptions_and_the_report(db, warehouse_url, tmp_path):
    for row in INVOICES:
        issue(db, *row)
    issue(db, *VOID, void=True)
    landing = str(tmp_path / "landing")
    generate_payments(warehouse_url, landing, "2025-03")
    issue(db, "INV-2025-000007", "t-0007", "USD", "380.05")  # after: the generated exports do not pay it
    (tmp_path / "landing" / "payments" / "2025-04" / "late.csv").write_text(
        "payment_id,invoice_number,amount,currency,status,paid_at\n"
        "py_void,INV-2025-000006,75.00,USD,succeeded,2025-04-09T10:00:00Z\n"
        # One payment stated at two amounts: a mismatch, and it pays nothing.
        "py_twice,INV-2025-000007,380.05,USD,succeeded,2025-04-09T11:00:00Z\n"
        "py_twice,INV-2025-000007,1.00,USD,succeeded,2025-04-09T11:00:00Z\n"
    )
    load_payments(warehouse_url, landing)
    payment_of = dict(
        db.execute("select invoice_number, payment_id from billing.payment_mismatches where resolved_at is null")
    )

    transform.run(
        ["build", "--select", "+recon_exceptions", "+rpt_payment_reconciliation"],
        warehouse_url,
        as_of=date(2025, 5, 1),  # April's close
        capture_output=True,
    )

    exceptions = db.execute(
        "select recon_id, key, amount, detail from marts.recon_exceptions where category = 'Payment' order by amount"
    ).fetchall()
    assert [row[:3] for row in exceptions] == [
        ("RECON-2025-03", f"PAYMENT_MISMATCH:{payment_of['INV-2025-000004']}", Decimal("0.01")),
        ("RECON-2025-04", f"PAYMENT_MISMATCH:{payment_of['INV-2025-999999']}", Decimal("42.00")),
        ("RECON-2025-03", f"PAYMENT_MISMATCH:{payment_of['INV-2025-000006']}", Decimal("75.00")),
        ("RECON-2025-03", "PAYMENT_MISMATCH:py_twice", Decimal("380.05")),
        ("RECON-2025-03", f"PAYMENT_MISMATCH:{payment_of['INV-2025-000003']}", Decimal("6857")),
    ]
    assert exceptions[0][3].endswith("for invoice INV-2025-000004 (100.00 owed): 0.01 still outstanding")

    report = db.execute(
        "select invoice_number, status, balance_due, amount_applied, amount_not_applied, amount_refunded,"
        " amount_outstanding, payment_state, failed_count, open_mismatch_count"
        " from marts.rpt_payment_reconciliation order by invoice_number"
    ).fetchall()
    d = Decimal
    assert report == [
        ("INV-2025-000001", "paid", d("143.00"), d("143.00"), d(0), d(0), d("0.00"), "settled", 0, 0),
        ("INV-2025-000002", "paid", d("240.80"), d("240.80"), d(0), d(0), d("0.00"), "settled", 1, 0),
        ("INV-2025-000003", "paid", d("6857"), d("6857"), d(0), d("6857"), d(0), "settled", 0, 1),
        ("INV-2025-000004", "issued", d("100.00"), d("99.99"), d(0), d(0), d("0.01"), "partially_paid", 0, 1),
        ("INV-2025-000005", "paid", d("50.00"), d("50.00"), d(0), d(0), d("0.00"), "settled", 0, 0),
        ("INV-2025-000006", "void", d(0), d(0), d("75.00"), d(0), d(0), "void", 0, 1),
        ("INV-2025-000007", "issued", d("380.05"), d(0), d("380.05"), d(0), d("380.05"), "unpaid", 0, 1),
    ]
