"""Payments: processor exports loaded into billing.payment_txn, matched to issued invoices, with
every noise case's figures asserted to the cent against the real warehouse."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from _issued import issue_invoice

from meterline import cli
from meterline.payments.load import load_payments
from meterline.synthetic.payments import generate_payments

pytestmark = pytest.mark.integration

ISSUED_AT = datetime(2025, 4, 2, 9, 0, tzinfo=UTC)
# Five issued invoices of March 2025 and one void one; numbers in the order the generator
# hands out its noise cases: partial, failed then succeeded, refunded, a cent short, exact.
INVOICES = [
    ("INV-2025-000001", "t-0001", "USD", "143.00"),
    ("INV-2025-000002", "t-0002", "EUR", "240.80"),
    ("INV-2025-000003", "t-0003", "JPY", "6857"),
    ("INV-2025-000004", "t-0004", "USD", "100.00"),
    ("INV-2025-000005", "t-0005", "USD", "50.00"),
]
VOID = ("INV-2025-000006", "t-0006", "USD", "75.00")
HEADER = "payment_id,invoice_number,amount,currency,status,paid_at\n"


def issue(db: psycopg.Connection, number: str, tenant: str, currency: str, total: str, *, void: bool = False) -> None:
    """An issued invoice with the contract's columns (as the emitter writes it)."""
    sub = uuid.uuid4()
    invoice_id = issue_invoice(
        db, number, tenant, currency, total, issued_at=ISSUED_AT, subscription_id=sub, draft_id=f"D-202503-{sub}"
    )
    if void:
        db.execute("select billing.void_invoice(%s, 'test', 'ops')", [invoice_id])


@pytest.fixture
def invoices(db: psycopg.Connection, warehouse_url: str) -> str:
    for row in INVOICES:
        issue(db, *row)
    issue(db, *VOID, void=True)
    return warehouse_url


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


def statuses(db: psycopg.Connection) -> dict[str, str]:
    return dict(db.execute("select invoice_number, status from billing.invoices order by 1").fetchall())


def open_mismatches(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "select invoice_number, reason, amount, currency, period_start::text from billing.payment_mismatches"
        " where resolved_at is null order by invoice_number, reason"
    ).fetchall()


def write(landing: Path, name: str, text: str) -> None:
    path = landing / "payments" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_generated_month_with_every_noise_case(invoices, db, landing):
    g = generate_payments(invoices, str(landing), "2025-03")
    assert g.cases == {
        "INV-2025-000001": "partial",
        "INV-2025-000002": "failed_then_succeeded",
        "INV-2025-000003": "refunded",
        "INV-2025-000004": "cent_short",
        "INV-2025-000005": "exact",
    }
    assert [Path(f).name for f in g.files] == [
        "processor-2025-04-03.csv",
        "processor-2025-04-08.json",
        "processor-2025-04-03-resent.csv",
    ]

    result = load_payments(invoices, str(landing))

    assert result.counts() == {
        "files_read": 3,
        "files_skipped": 0,
        "files_unreadable": 0,
        "rows_read": 14,
        "rows_loaded": 9,
        "duplicates": 5,  # the resent export, row for row
        "rejected": 0,
        "invoices_paid": 4,
        "mismatches": 4,
        "mismatches_resolved": 1,  # the first part of the partial payment, completed by the second
    }
    assert sorted(result.paid) == ["INV-2025-000001", "INV-2025-000002", "INV-2025-000003", "INV-2025-000005"]
    assert statuses(db) == {
        "INV-2025-000001": "paid",  # 85.80 + 57.20
        "INV-2025-000002": "paid",  # failed, then the same payment succeeded
        "INV-2025-000003": "paid",  # refunded afterwards: a mismatch for finance, not a silent change
        "INV-2025-000004": "issued",  # 99.99 of 100.00
        "INV-2025-000005": "paid",
        "INV-2025-000006": "void",
    }
    assert open_mismatches(db) == [
        ("INV-2025-000003", "refund", Decimal("6857"), "JPY", "2025-03-01"),
        ("INV-2025-000004", "underpaid", Decimal("0.01"), "USD", "2025-03-01"),
        ("INV-2025-999999", "unknown_invoice", Decimal("42.00"), "USD", "2025-04-01"),
    ]
    resolved = db.execute(
        "select invoice_number, reason, amount from billing.payment_mismatches where resolved_at is not null"
    ).fetchall()
    assert resolved == [("INV-2025-000001", "underpaid", Decimal("57.20"))]

    per_invoice = db.execute(
        "select invoice_number, status, match_status, sum(amount), sum(amount_usd), count(*)"
        " from billing.payment_txn group by 1, 2, 3 order by 1, 2, 3"
    ).fetchall()
    assert per_invoice == [
        ("INV-2025-000001", "succeeded", "applied", Decimal("143.00"), Decimal("143.00"), 2),
        ("INV-2025-000002", "failed", "not_applicable", Decimal("240.80"), Decimal("260.06"), 1),
        ("INV-2025-000002", "succeeded", "applied", Decimal("240.80"), Decimal("260.06"), 1),
        ("INV-2025-000003", "refunded", "mismatch", Decimal("6857"), Decimal("45.94"), 1),
        ("INV-2025-000003", "succeeded", "applied", Decimal("6857"), Decimal("45.94"), 1),
        ("INV-2025-000004", "succeeded", "applied", Decimal("99.99"), Decimal("99.99"), 1),
        ("INV-2025-000005", "succeeded", "applied", Decimal("50.00"), Decimal("50.00"), 1),
        ("INV-2025-999999", "succeeded", "mismatch", Decimal("42.00"), Decimal("42.00"), 1),
    ]
    audits = db.execute(
        "select actor, resource, metadata->>'previous_status', metadata->>'paid', metadata->>'currency'"
        " from ops.audit_log where action = 'invoice.paid' order by resource"
    ).fetchall()
    assert audits == [
        ("meterline.payments", "invoice:INV-2025-000001", "issued", "143.00", "USD"),
        ("meterline.payments", "invoice:INV-2025-000002", "issued", "240.80", "EUR"),
        ("meterline.payments", "invoice:INV-2025-000003", "issued", "6857", "JPY"),
        ("meterline.payments", "invoice:INV-2025-000005", "issued", "50.00", "USD"),
    ]


def _snapshot(db: psycopg.Connection) -> tuple:
    return (
        db.execute("select * from billing.payment_txn order by payment_id, status").fetchall(),
        db.execute("select * from billing.payment_mismatches order by payment_id, status").fetchall(),
        db.execute("select invoice_number, status, updated_at from billing.invoices order by 1").fetchall(),
        db.execute("select count(*) from ops.audit_log").fetchone(),
    )


def test_reloading_the_same_exports_changes_nothing(invoices, db, landing):
    generate_payments(invoices, str(landing), "2025-03")
    load_payments(invoices, str(landing))
    before = _snapshot(db)

    again = load_payments(invoices, str(landing))
    assert again.counts()["files_skipped"] == 3
    assert again.counts()["rows_loaded"] == again.counts()["invoices_paid"] == again.counts()["mismatches"] == 0

    # The same export delivered once more under yet another name: read, every row a duplicate.
    folder = landing / "payments" / "2025-04"
    shutil.copy(folder / "processor-2025-04-08.json", folder / "processor-2025-04-08-copy.json")
    copy = load_payments(invoices, str(landing))
    assert copy.counts() | {"files_skipped": 0} == {
        "files_read": 1,
        "files_skipped": 0,
        "files_unreadable": 0,
        "rows_read": 4,
        "rows_loaded": 0,
        "duplicates": 4,
        "rejected": 0,
        "invoices_paid": 0,
        "mismatches": 0,
        "mismatches_resolved": 0,
    }
    assert _snapshot(db) == before


def test_payment_to_a_void_invoice_is_a_mismatch_not_a_status_change(invoices, db, landing):
    write(landing, "2025-04/p.csv", HEADER + "py_v1,INV-2025-000006,75.00,USD,succeeded,2025-04-03T10:00:00Z\n")
    result = load_payments(invoices, str(landing))
    assert result.paid == []
    assert statuses(db)["INV-2025-000006"] == "void"
    assert open_mismatches(db) == [("INV-2025-000006", "void_invoice", Decimal("75.00"), "USD", "2025-03-01")]
    assert db.execute("select count(*) from ops.audit_log where action = 'invoice.paid'").fetchone()[0] == 0

    # The processor refunds it: the refund settles the mismatch.
    write(landing, "2025-04/q.csv", HEADER + "py_v1,INV-2025-000006,75.00,USD,refunded,2025-04-05T10:00:00Z\n")
    load_payments(invoices, str(landing))
    assert open_mismatches(db) == []
    assert db.execute("select resolved_by from billing.payment_mismatches").fetchone()[0] == "py_v1:refunded"
    assert statuses(db)["INV-2025-000006"] == "void"


def test_second_payment_overpayment_and_currency_are_mismatches(invoices, db, landing):
    write(
        landing,
        "2025-04/p.csv",
        HEADER
        + "py_a,INV-2025-000005,50.00,USD,succeeded,2025-04-03T10:00:00Z\n"
        + "py_b,INV-2025-000005,50.00,USD,succeeded,2025-04-04T10:00:00Z\n"  # a second payment
        + "py_c,INV-2025-000004,100.05,USD,succeeded,2025-04-03T10:00:00Z\n"  # five cents too much
        + "py_d,INV-2025-000001,143.00,EUR,succeeded,2025-04-03T10:00:00Z\n",  # billed in USD
    )
    result = load_payments(invoices, str(landing))
    assert sorted(result.paid) == ["INV-2025-000004", "INV-2025-000005"]
    assert statuses(db)["INV-2025-000001"] == "issued"
    assert open_mismatches(db) == [
        ("INV-2025-000001", "currency", Decimal("143.00"), "EUR", "2025-03-01"),
        ("INV-2025-000004", "overpaid", Decimal("0.05"), "USD", "2025-03-01"),
        ("INV-2025-000005", "already_paid", Decimal("50.00"), "USD", "2025-03-01"),
    ]
    assert dict(db.execute("select payment_id, match_status from billing.payment_txn order by 1").fetchall()) == {
        "py_a": "applied",
        "py_b": "mismatch",
        "py_c": "applied",
        "py_d": "mismatch",
    }


def test_a_payment_stated_at_two_amounts_in_one_export_is_a_mismatch_and_pays_nothing(invoices, db, landing):
    write(
        landing,
        "2025-04/p.csv",
        HEADER
        + "py_x,INV-2025-000001,143.00,USD,succeeded,2025-04-03T10:00:00Z\n"
        + "py_y,INV-2025-000005,50.00,USD,succeeded,2025-04-03T11:00:00Z\n"  # undisputed: pays its invoice
        + "py_x,INV-2025-000001,1.00,USD,succeeded,2025-04-03T10:00:00Z\n",
    )
    result = load_payments(invoices, str(landing))

    assert {k: result.counts()[k] for k in ("rows_read", "rows_loaded", "duplicates", "rejected", "mismatches")} == {
        "rows_read": 3, "rows_loaded": 2, "duplicates": 0, "rejected": 1, "mismatches": 1,
    }  # fmt: skip
    assert result.paid == ["INV-2025-000005"]
    assert statuses(db)["INV-2025-000001"] == "issued"  # neither 143.00 nor 1.00 applied
    assert open_mismatches(db) == [
        ("INV-2025-000001", "conflicting_statements", Decimal("143.00"), "USD", "2025-03-01")
    ]
    assert db.execute("select detail from billing.payment_mismatches").fetchone()[0] == (
        "succeeded payment py_x stated 2 ways: 143.00 USD for INV-2025-000001 (payments/2025-04/p.csv line 2);"
        " 1.00 USD for INV-2025-000001 (payments/2025-04/p.csv line 4); applied to no invoice until the processor"
        " confirms one"
    )
    assert db.execute("select match_status, amount from billing.payment_txn where payment_id = 'py_x'").fetchall() == [
        ("mismatch", Decimal("143.00"))
    ]
    assert db.execute("select line_no, reason from raw.payments_rejected").fetchall() == [
        (
            4,
            "conflicts with succeeded payment py_x loaded from payments/2025-04/p.csv (INV-2025-000001, 143.00 USD):"
            " PAYMENT_MISMATCH",
        )
    ]
    assert db.execute("select count(*) from ops.audit_log where resource = 'invoice:INV-2025-000001'").fetchone() == (
        0,
    )


def test_a_later_export_contradicting_an_applied_payment_is_a_mismatch(invoices, db, landing):
    write(landing, "2025-04/a.csv", HEADER + "py_z,INV-2025-000001,143.00,USD,succeeded,2025-04-03T10:00:00Z\n")
    assert load_payments(invoices, str(landing)).paid == ["INV-2025-000001"]
    write(landing, "2025-04/b.csv", HEADER + "py_z,INV-2025-000001,1.00,USD,succeeded,2025-04-03T10:00:00Z\n")
    result = load_payments(invoices, str(landing))

    assert (result.paid, result.counts()["rejected"], result.counts()["mismatches"]) == ([], 1, 1)
    assert statuses(db)["INV-2025-000001"] == "paid"  # decided on the first statement; finance settles the rest
    assert open_mismatches(db) == [
        ("INV-2025-000001", "conflicting_statements", Decimal("143.00"), "USD", "2025-03-01")
    ]
    assert db.execute("select detail from billing.payment_mismatches").fetchone()[0] == (
        "succeeded payment py_z loaded as 143.00 USD for INV-2025-000001 (payments/2025-04/a.csv) and decided then,"
        " stated again as 1.00 USD for INV-2025-000001 (payments/2025-04/b.csv line 2)"
    )
    # Stated a third way later: the payment has its mismatch already, the row is rejected.
    write(landing, "2025-04/c.csv", HEADER + "py_z,INV-2025-000001,2.00,USD,succeeded,2025-04-03T10:00:00Z\n")
    third = load_payments(invoices, str(landing))
    assert (third.counts()["rejected"], third.counts()["mismatches"]) == (1, 0)
    assert db.execute("select count(*) from billing.payment_mismatches").fetchone() == (1,)


def test_credit_notes_reduce_what_is_owed(invoices, db, landing):
    invoice_id = db.execute(
        "select invoice_id from billing.invoices where invoice_number = 'INV-2025-000004'"
    ).fetchone()
    note_id = uuid.uuid4()
    with db.transaction():
        db.execute(
            "insert into billing.credit_notes (credit_note_id, credit_note_number, invoice_id, tenant_id, currency,"
            " subtotal, tax, total, reason, created_by, issued_at)"
            " values (%s, 'CN-2025-000001', %s, 't-0004', 'USD', -30.00, 0, -30.00, 'goodwill', 'ops', %s)",
            [note_id, invoice_id[0], ISSUED_AT],
        )
        db.execute("select billing.seal_credit_note(%s)", [note_id])
    write(landing, "2025-04/p.csv", HEADER + "py_a,INV-2025-000004,70.00,USD,succeeded,2025-04-03T10:00:00Z\n")
    assert load_payments(invoices, str(landing)).paid == ["INV-2025-000004"]
    assert open_mismatches(db) == []


def test_bad_rows_are_rejected_with_file_line_and_reason_and_good_rows_load(invoices, db, landing):
    write(
        landing,
        "2025-04/p.csv",
        HEADER
        + "py_1,INV-2025-000005,50.00,USD,succeeded,2025-04-03T10:00:00Z\n"  # line 2: good
        + "py_2,INV-2025-000004,ten,USD,succeeded,2025-04-03T10:00:00Z\n"
        + "py_3,INV-2025-000004,10.00,USD,pending,2025-04-03T10:00:00Z\n"
        + "py_4,,10.00,USD,succeeded,2025-04-03T10:00:00Z\n"
        + "py_5,INV-2025-000003,100.5,JPY,succeeded,2025-04-03T10:00:00Z\n"
        + "py_6,INV-2025-000004,10.00,XXX,succeeded,2025-04-03T10:00:00Z\n"
        + "py_7,INV-2025-000004,10.00,USD,succeeded,yesterday\n"
        + "py_8,INV-2025-000004,-1.00,USD,succeeded,2025-04-03T10:00:00Z\n"
        + "py_1,INV-2025-000004,50.00,USD,succeeded,2025-04-03T10:00:00Z\n",  # line 10: same key, other invoice
    )
    write(landing, "2025-04/broken.json", '{"payments": [')
    result = load_payments(invoices, str(landing))
    assert result.unreadable == [
        f"{landing}/payments/2025-04/broken.json: not JSON (Expecting value: line 1 column 15 (char 14))"
    ]
    assert result.counts()["rows_loaded"] == 1
    # py_1 is stated for two invoices (lines 2 and 10): it pays neither until that is settled.
    assert statuses(db)["INV-2025-000005"] == "issued"
    assert open_mismatches(db) == [("INV-2025-000005", "conflicting_statements", Decimal("50.00"), "USD", "2025-03-01")]
    rejected = db.execute("select source_file, line_no, reason from raw.payments_rejected order by line_no").fetchall()
    assert rejected == [
        ("payments/2025-04/p.csv", 3, "amount 'ten' is not a number"),
        ("payments/2025-04/p.csv", 4, "unknown status 'pending' (succeeded, failed or refunded)"),
        ("payments/2025-04/p.csv", 5, "missing invoice_number"),
        ("payments/2025-04/p.csv", 6, "amount 100.5 has more than 0 decimals for JPY"),
        ("payments/2025-04/p.csv", 7, "unknown currency 'XXX'"),
        ("payments/2025-04/p.csv", 8, "paid_at 'yesterday' is not an ISO-8601 timestamp"),
        ("payments/2025-04/p.csv", 9, "amount '-1.00' must be a non-negative number"),
        (
            "payments/2025-04/p.csv",
            10,
            "conflicts with succeeded payment py_1 loaded from payments/2025-04/p.csv (INV-2025-000005, 50.00 USD):"
            " PAYMENT_MISMATCH",
        ),
    ]
    # The unreadable file is not recorded: fixed, it is read on the next load.
    assert db.execute("select count(*) from raw.payment_files").fetchone()[0] == 1
    write(
        landing,
        "2025-04/broken.json",
        json.dumps({"payments": [{"payment_id": "py_9", "invoice_number": "INV-2025-000001", "amount": "143.00",
                                  "currency": "USD", "status": "succeeded", "paid_at": "2025-04-04T08:00:00+02:00"}]}),
    )  # fmt: skip
    fixed = load_payments(invoices, str(landing))
    assert fixed.paid == ["INV-2025-000001"] and fixed.unreadable == []
    paid_at = db.execute("select paid_at from billing.payment_txn where payment_id = 'py_9'").fetchone()[0]
    assert paid_at == datetime(2025, 4, 4, 6, 0, tzinfo=UTC)


def test_loads_from_s3_the_same_way(invoices, db, s3_bucket):
    from meterline.landing import Zone

    Zone(s3_bucket).write_bytes(
        "payments/2025-04/p.csv", (HEADER + "py_1,INV-2025-000005,50.00,USD,succeeded,2025-04-03T10:00:00Z\n").encode()
    )
    assert load_payments(invoices, s3_bucket).paid == ["INV-2025-000005"]
    assert load_payments(invoices, s3_bucket).counts()["files_skipped"] == 1


def test_cli_generates_and_loads_payments(db, warehouse_url, tmp_path, capsys):
    for row in INVOICES[:2]:
        issue(db, *row)
    landing = str(tmp_path / "landing")
    assert cli.main(["generate", "payments", "--period", "2025-03", "--landing", landing]) == 0
    assert cli.main(["load", "payments", "--landing", landing, "--actor", "ops:ann"]) == 0
    out = capsys.readouterr().out
    assert "payments for 2 invoices of 2025-03: 7 rows in 3 files" in out
    assert "[meterline] paid: INV-2025-000001" in out and "[meterline] paid: INV-2025-000002" in out
    assert "(unknown_invoice): succeeded payment" in out
    assert db.execute("select actor from ops.audit_log where action = 'invoice.paid'").fetchall() == [
        ("ops:ann",),
        ("ops:ann",),
    ]

    (tmp_path / "landing" / "payments" / "bad.json").write_text("not json")
    assert cli.main(["load", "payments", "--landing", landing]) == 1
    assert "unreadable: " in capsys.readouterr().out


def test_a_failure_mid_load_leaves_the_warehouse_as_before(invoices, db, landing):
    generate_payments(invoices, str(landing), "2025-03")
    # The audit write (after the payments and mismatches are written) fails: nothing may remain.
    db.execute(
        "create function ops.refuse_audit() returns trigger language plpgsql as"
        " $$ begin raise exception 'audit log unavailable'; end $$;"
        " create trigger refuse before insert on ops.audit_log for each row execute function ops.refuse_audit()"
    )
    with pytest.raises(psycopg.errors.RaiseException, match="audit log unavailable"):
        load_payments(invoices, str(landing))
    for table in ("billing.payment_txn", "billing.payment_mismatches", "raw.payment_files", "raw.payments_rejected"):
        assert db.execute(f"select count(*) from {table}").fetchone()[0] == 0, table
    assert set(statuses(db).values()) == {"issued", "void"}

    db.execute("drop trigger refuse on ops.audit_log")
    assert load_payments(invoices, str(landing)).counts()["invoices_paid"] == 4


def test_two_loaders_at_once_load_each_payment_once(invoices, db, landing):
    from concurrent.futures import ThreadPoolExecutor

    generate_payments(invoices, str(landing), "2025-03")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: load_payments(invoices, str(landing)), range(2)))
    assert sorted(r.counts()["rows_loaded"] for r in results) == [0, 9]
    assert sorted(r.counts()["invoices_paid"] for r in results) == [0, 4]
    assert db.execute("select count(*) from ops.audit_log where action = 'invoice.paid'").fetchone()[0] == 4


@pytest.mark.slow  # the emitter's PDFs
def test_invoices_issued_by_the_emitter_are_paid(gated_month_db, gated_month_url, tmp_path):
    from handwritten_month import TOTALS

    from meterline.invoicing.emit import emit

    # The month after the suites and a gate that passed (handwritten_month.pass_gate).
    db, warehouse_url = gated_month_db, gated_month_url
    emit(warehouse_url, "2025-03", str(tmp_path / "outbox"), issued_at=ISSUED_AT)
    landing = str(tmp_path / "landing")
    g = generate_payments(warehouse_url, landing, "2025-03")
    result = load_payments(warehouse_url, landing)

    issued = dict(db.execute("select tenant_id, invoice_number from billing.invoices").fetchall())
    assert g.cases == {
        issued["t-0001"]: "partial",
        issued["t-0002"]: "failed_then_succeeded",
        issued["t-0003"]: "refunded",
    }
    assert sorted(result.paid) == sorted(issued.values())
    applied = db.execute(
        "select i.tenant_id, sum(t.amount) from billing.payment_txn t join billing.invoices i using (invoice_id)"
        " where t.status = 'succeeded' and t.match_status = 'applied' group by 1 order by 1"
    ).fetchall()
    assert applied == sorted(TOTALS.items())
