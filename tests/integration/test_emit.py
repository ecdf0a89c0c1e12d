"""The emitter on a real warehouse and outbox: every invoice once, with its documents, whatever
happens (re-runs, two emitters at once, a crash mid-emission), and immutable once issued."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from _gate_month import DRAFT, PERIOD, TOTALS, build, pass_gate

from meterline.invoicing.emit import emit, load_document
from meterline.landing import Zone

pytestmark = pytest.mark.integration

ISSUED_AT = datetime(2025, 4, 2, 9, 30, tzinfo=UTC)
NUMBERS = ["INV-2025-000001", "INV-2025-000002", "INV-2025-000003"]


@pytest.fixture
def month(db: psycopg.Connection, warehouse_url: str) -> str:
    build(db)
    pass_gate(warehouse_url)
    return warehouse_url


def invoices(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "select invoice_number, tenant_id, draft_id, currency, subtotal, credits, tax, total, status"
        " from billing.invoices order by invoice_number"
    ).fetchall()


def assert_complete_set(db: psycopg.Connection, outbox: str) -> None:
    """Exactly one live invoice per draft, numbers 1..3, two documents each whose hash matches."""
    rows = invoices(db)
    assert [r[0] for r in rows] == NUMBERS
    assert sorted(r[2] for r in rows) == sorted(DRAFT.values())
    assert {r[1]: r[7] for r in rows} == TOTALS
    zone = Zone(outbox)
    assert [f.path for f in zone.list("invoices/2025-03")] == [
        f"invoices/2025-03/{n}.{ext}" for n in NUMBERS for ext in ("json", "pdf")
    ]
    hashes = db.execute(
        "select invoice_number, content_hash, billing.invoice_content_hash(invoice_id) from billing.invoices"
    ).fetchall()
    for number, stored_hash, recomputed in hashes:
        body = json.loads(zone.read_bytes(f"invoices/2025-03/{number}.json"))
        assert body["content_hash"] == stored_hash == recomputed == load_document(db, number).content_hash
        assert len(stored_hash) == 64
    assert db.execute("select count(*) from ops.audit_log where action = 'invoice.issued'").fetchone() == (3,)


def test_clean_month_issues_every_invoice_with_documents(month, db, tmp_path):
    outbox = str(tmp_path / "outbox")
    result = emit(month, PERIOD, outbox, issued_at=ISSUED_AT)

    assert result.issued == NUMBERS and result.blocked == {} and result.already_issued == []
    assert invoices(db) == [
        ("INV-2025-000001", "t-0001", DRAFT["t-0001"], "USD", Decimal("130.00"), Decimal("0"), Decimal("13.00"),
         Decimal("143.00"), "issued"),
        ("INV-2025-000002", "t-0002", DRAFT["t-0002"], "EUR", Decimal("212.35"), Decimal("10.00"), Decimal("38.45"),
         Decimal("240.80"), "issued"),
        ("INV-2025-000003", "t-0003", DRAFT["t-0003"], "JPY", Decimal("6234"), Decimal("0"), Decimal("623"),
         Decimal("6857"), "issued"),
    ]  # fmt: skip
    lines = db.execute(
        "select i.invoice_number, l.line_no, l.kind, l.amount from billing.invoice_line_items l"
        " join billing.invoices i using (invoice_id) where i.tenant_id = 't-0002' order by l.line_no"
    ).fetchall()
    assert lines == [
        ("INV-2025-000002", 1, "base_fee", Decimal("200.00")),
        ("INV-2025-000002", 2, "usage", Decimal("12.35")),
        ("INV-2025-000002", 3, "credit", Decimal("-10.00")),
    ]
    assert_complete_set(db, outbox)
    body = json.loads(Path(outbox, "invoices/2025-03/INV-2025-000002.json").read_text())
    assert (body["number"], body["tenant_name"], body["total"], body["issued_at"]) == (
        "INV-2025-000002", "Beta GmbH", "240.80", "2025-04-02T09:30:00+00:00",
    )  # fmt: skip
    audit = db.execute(
        "select actor, metadata->>'draft_id', metadata->>'total' from ops.audit_log"
        " where action = 'invoice.issued' and resource = 'invoice:INV-2025-000003'"
    ).fetchone()
    assert audit == ("emitter", DRAFT["t-0003"], "6857")


def test_rerun_issues_nothing_twice(month, db, tmp_path):
    outbox = str(tmp_path / "outbox")
    emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    before = Path(outbox, "invoices/2025-03/INV-2025-000001.json").read_bytes()
    again = emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    assert again.issued == [] and sorted(again.already_issued) == sorted(DRAFT.values())
    assert_complete_set(db, outbox)
    assert Path(outbox, "invoices/2025-03/INV-2025-000001.json").read_bytes() == before
    assert db.execute("select last_number from billing.document_counters").fetchall() == [(3,)]


def test_concurrent_emitters_issue_each_invoice_once(month, db, tmp_path):
    outbox = str(tmp_path / "outbox")
    start = threading.Barrier(3)
    results, errors = [], []

    def run():
        try:
            start.wait()
            results.append(emit(month, PERIOD, outbox, issued_at=ISSUED_AT))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(n for r in results for n in r.issued) == NUMBERS
    assert sum(len(r.already_issued) for r in results) == 6
    assert_complete_set(db, outbox)


def test_crash_before_commit_then_rerun_gives_a_complete_once_only_set(month, db, tmp_path):
    outbox = str(tmp_path / "outbox")

    def crash_on_second(draft_id: str, number: str) -> None:
        if number == "INV-2025-000002":
            raise RuntimeError("simulated crash after the documents were written")

    with pytest.raises(RuntimeError, match="simulated crash"):
        emit(month, PERIOD, outbox, issued_at=ISSUED_AT, before_commit=crash_on_second)
    assert [r[0] for r in invoices(db)] == ["INV-2025-000001"]
    # The crashed invoice's documents were written, its row was not: orphans until the re-run.
    assert Path(outbox, "invoices/2025-03/INV-2025-000002.json").exists()

    Path(outbox, "invoices/2025-03/INV-2025-000002.json").write_text("stale orphan")
    rerun = emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    assert rerun.removed == [f"{outbox}/invoices/2025-03/INV-2025-000002.{ext}" for ext in ("json", "pdf")]
    assert rerun.issued == ["INV-2025-000002", "INV-2025-000003"]
    assert_complete_set(db, outbox)


def _emit_and_die(url: str, outbox: str) -> None:
    """A child process that is killed (no cleanup, no rollback message) inside the 2nd issue."""

    def die(draft_id: str, number: str) -> None:
        if number.endswith("000002"):
            os._exit(17)

    emit(url, PERIOD, outbox, issued_at=ISSUED_AT, before_commit=die)


def test_process_killed_mid_emission_then_rerun_completes(month, db, tmp_path):
    outbox = str(tmp_path / "outbox")
    child = multiprocessing.get_context("spawn").Process(target=_emit_and_die, args=(month, outbox))
    child.start()
    child.join(120)
    assert child.exitcode == 17
    assert [r[0] for r in invoices(db)] == ["INV-2025-000001"]
    rerun = emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    assert rerun.issued == ["INV-2025-000002", "INV-2025-000003"]
    assert_complete_set(db, outbox)


def test_lost_documents_are_rendered_again_identically(month, db, tmp_path):
    outbox = str(tmp_path / "outbox")
    emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    original = Path(outbox, "invoices/2025-03/INV-2025-000003.json").read_bytes()
    original_pdf = Path(outbox, "invoices/2025-03/INV-2025-000003.pdf").read_bytes()
    Path(outbox, "invoices/2025-03/INV-2025-000003.json").unlink()
    Path(outbox, "invoices/2025-03/INV-2025-000003.pdf").unlink()
    rerun = emit(month, PERIOD, outbox)
    assert rerun.repaired == [f"{outbox}/invoices/2025-03/INV-2025-000003.{ext}" for ext in ("json", "pdf")]
    assert Path(outbox, "invoices/2025-03/INV-2025-000003.json").read_bytes() == original
    assert hashlib.sha256(Path(outbox, "invoices/2025-03/INV-2025-000003.pdf").read_bytes()).hexdigest() == (
        hashlib.sha256(original_pdf).hexdigest()
    )


def test_emit_to_an_s3_outbox(month, db, s3_bucket):
    import boto3

    outbox = f"{s3_bucket}/outbox"
    result = emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    assert result.documents[0] == f"{outbox}/invoices/2025-03/INV-2025-000001.json"
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket.removeprefix("s3://"), Prefix="outbox/invoices/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        f"outbox/invoices/2025-03/{n}.{ext}" for n in NUMBERS for ext in ("json", "pdf")
    ]
    assert_complete_set(db, outbox)


def test_issued_invoice_cannot_be_changed_in_the_database(month, db, tmp_path):
    """As the pipeline: no UPDATE, DELETE or TRUNCATE on billing; the status changes only through
    the audited functions (every refusal, as a real login: test_billing_immutable.py)."""
    emit(month, PERIOD, str(tmp_path / "outbox"), issued_at=ISSUED_AT)
    for statement in (
        "update billing.invoices set total = 1 where invoice_number = 'INV-2025-000001'",
        "update billing.invoice_line_items set amount = 0",
        "delete from billing.invoices",
        "truncate billing.invoice_line_items cascade",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(statement)
    # Its status may change, and updated_at with it.
    invoice_id = db.execute("select invoice_id from billing.invoices where invoice_number = 'INV-2025-000001'")
    db.execute("select billing.dispute_invoice(%s, 'contested', 'ops:test')", [invoice_id.fetchone()[0]])
    assert db.execute(
        "select status, updated_at > created_at, total from billing.invoices where invoice_number = 'INV-2025-000001'"
    ).fetchone() == ("disputed", True, Decimal("143.00"))


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="poppler-utils missing: `make install` installs it as root")
def test_pdf_renders_with_number_tenant_lines_and_totals(month, db, tmp_path):
    outbox = tmp_path / "outbox"
    emit(month, PERIOD, str(outbox), issued_at=ISSUED_AT)
    pdf = outbox / "invoices/2025-03/INV-2025-000002.pdf"
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True)
    png = next(tmp_path.glob("page*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    for expected in (
        "Invoice INV-2025-000002",
        "Beta GmbH (t-0002)",
        "Base fee (Team)",
        "API requests",
        "12345",
        "Credit: onboarding",
        "212.35 EUR",
        "-10.00 EUR",
        "38.45 EUR",
        "240.80 EUR",
    ):
        assert expected in text, f"{expected!r} not in the rendered PDF:\n{text}"


def test_a_pricing_error_dbt_found_after_the_gate_still_blocks_that_draft(db, warehouse_url, tmp_path):
    build(db)
    db.execute(
        "alter table marts.invoice_header add column has_pricing_error boolean not null default false,"
        " add column pricing_errors text"
    )
    pass_gate(warehouse_url)
    # dbt is rebuilt after the gate ran, and now finds a price missing for t-0003.
    db.execute(
        "update marts.invoice_header set has_pricing_error = true,"
        " pricing_errors = 'no price for metric compute_ms on plan plan-jpy' where tenant_id = 't-0003'"
    )
    result = emit(warehouse_url, PERIOD, str(tmp_path / "outbox"), issued_at=ISSUED_AT)
    assert result.issued == ["INV-2025-000001", "INV-2025-000002"]
    assert result.blocked == {
        DRAFT["t-0003"]: [
            f"draft {DRAFT['t-0003']}: pricing configuration error: no price for metric compute_ms on plan plan-jpy"
        ]
    }
    assert db.execute("select count(*) from billing.invoices where tenant_id = 't-0003'").fetchone() == (0,)
