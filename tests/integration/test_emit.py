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
from handwritten_month import DRAFT, PERIOD, SUB, TOTALS, pass_gate

from meterline import close
from meterline.invoicing.emit import emit, load_document
from meterline.invoicing.gate import GateFailed
from meterline.landing import Zone

pytestmark = pytest.mark.integration

ISSUED_AT = datetime(2025, 4, 2, 9, 30, tzinfo=UTC)
NUMBERS = ["INV-2025-000001", "INV-2025-000002", "INV-2025-000003"]


@pytest.fixture
def month(gated_month_url: str) -> str:
    """A copy of the month after the suites and a gate that passed (handwritten_month.pass_gate)."""
    return gated_month_url


@pytest.fixture
def db(gated_month_db: psycopg.Connection) -> psycopg.Connection:
    return gated_month_db


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


def test_a_draft_failing_at_issue_is_left_out_and_its_number_never_shows_twice(month, db, tmp_path):
    """An error inside one invoice's transaction (after its documents were rendered): that draft
    is not issued, the others are; the number it took goes to the next invoice, and its documents
    never appear under that number."""
    outbox = str(tmp_path / "outbox")

    def fail_beta(draft_id: str, number: str) -> None:
        if draft_id == DRAFT["t-0002"]:
            raise RuntimeError("simulated failure after the documents were rendered")

    first = emit(month, PERIOD, outbox, issued_at=ISSUED_AT, before_commit=fail_beta)
    assert first.issued == ["INV-2025-000001", "INV-2025-000002"] and not first.complete
    assert list(first.failed) == [DRAFT["t-0002"]]
    assert "RuntimeError: simulated failure" in first.failed[DRAFT["t-0002"]]
    assert [(r[0], r[1]) for r in invoices(db)] == [("INV-2025-000001", "t-0001"), ("INV-2025-000002", "t-0003")]
    # INV-2025-000002 is Kappa's; Beta's rolled-back rendering waits under a temporary name.
    assert json.loads(Path(outbox, "invoices/2025-03/INV-2025-000002.json").read_text())["tenant_id"] == "t-0003"
    pending = sorted(f.path for f in Zone(outbox).list(".pending"))
    assert [p.rsplit(".", 1)[0] for p in pending] == [
        ".pending/invoices/2025-03/INV-2025-000002.json", ".pending/invoices/2025-03/INV-2025-000002.pdf"
    ]  # fmt: skip
    # A document an older emitter left under a number no invoice owns is removed too.
    Path(outbox, "invoices/2025-03/INV-2025-000009.json").write_text("stale orphan")

    rerun = emit(month, PERIOD, outbox, issued_at=ISSUED_AT)
    assert sorted(rerun.removed) == sorted(
        [f"{outbox}/{p}" for p in pending] + [f"{outbox}/invoices/2025-03/INV-2025-000009.json"]
    )
    assert rerun.issued == ["INV-2025-000003"] and rerun.complete
    assert json.loads(Path(outbox, "invoices/2025-03/INV-2025-000002.json").read_text())["tenant_id"] == "t-0003"
    assert_complete_set(db, outbox)
    assert Zone(outbox).list(".pending") == []


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
        "Team base fee, 31 of 31 days",
        "api_calls (per_unit, plan team-eur): 247 calls",
        "credits applied (0.00 EUR carried forward)",
        "212.35 EUR",
        "-10.00 EUR",
        "38.45 EUR",
        "240.80 EUR",
    ):
        assert expected in text, f"{expected!r} not in the rendered PDF:\n{text}"


def _late_batch_run(db: psycopg.Connection) -> None:
    """A batch run of t-0003 in March that reached raw.events after the gate (no new file in the
    ledger: only the draft's content tells)."""
    db.execute(
        'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties, "timestamp",'
        " source_file, line_no, partition_date) values (gen_random_uuid(), 'batch-late', %s, 'batch.run',"
        " '{\"duration_ms\": 66}', '2025-03-21T10:00:00Z', 'events/late.jsonl', 1, '2025-03-21')",
        [SUB["t-0003"]],
    )


def test_a_draft_rebuilt_after_the_gate_waits_for_the_next_gate(month, db, tmp_path):
    _late_batch_run(db)
    close.build(month, PERIOD)  # the nightly build: t-0003's draft is now 6234 + 66 JPY

    result = emit(month, PERIOD, str(tmp_path / "outbox"), issued_at=ISSUED_AT)
    assert result.issued == ["INV-2025-000001", "INV-2025-000002"]
    assert list(result.failed) == [DRAFT["t-0003"]] and not result.complete
    assert "the draft changed since the gate at" in result.failed[DRAFT["t-0003"]]
    assert db.execute("select count(*) from billing.invoices where tenant_id = 't-0003'").fetchone() == (0,)

    pass_gate(month)  # the gate sees the new draft: 5000 + 1300 = 6300, tax 630
    again = emit(month, PERIOD, str(tmp_path / "outbox"), issued_at=ISSUED_AT)
    assert again.issued == ["INV-2025-000003"] and again.complete
    assert db.execute("select total from billing.invoices where tenant_id = 't-0003'").fetchone() == (Decimal("6930"),)


def test_emit_refuses_when_the_periods_inputs_changed_since_the_gate(month, db, tmp_path):
    """The gate passed at 1 % rejection; then 15 malformed rows of March were quarantined."""
    db.execute(
        "insert into raw.events_rejected (source_file, checksum, line_no, reason, raw_record, partition_date)"
        " select 'events/year=2025/month=03/day=02/part-1.jsonl', 'abc', n, 'malformed_json', '{', '2025-03-02'"
        " from generate_series(1, 15) as n"
    )
    with pytest.raises(GateFailed) as refused:
        emit(month, PERIOD, str(tmp_path / "outbox"), issued_at=ISSUED_AT)
    message = str(refused.value)
    assert message.startswith("data changed since the gate at ")
    assert "(events_rejected 0 -> 15)" in message and "re-run the gate" in message
    assert db.execute("select count(*) from billing.invoices").fetchone() == (0,)
    assert Zone(str(tmp_path / "outbox")).list() == []
