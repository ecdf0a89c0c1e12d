"""Immutability that holds against the pipeline (090_billing_owner.sql), shown by a real login
that is a member of meterline_pipeline and nothing else (never a superuser, never the owner):
every way to change an issued document is refused, every legitimate path still works and
audits exactly, the content hash is one definition checked by the gate and by dbt, and the
migration applies to a fresh warehouse, to one already holding invoices, and as a bootstrap
login that is not a superuser."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from _issued import issue_invoice
from handwritten_month import DRAFT, PERIOD, TOTALS, pass_gate
from psycopg import sql
from psycopg.conninfo import make_conninfo

from meterline import transform, warehouse
from meterline.invoicing import corrections, integrity
from meterline.invoicing.emit import emit
from meterline.payments.load import load_payments

pytestmark = pytest.mark.integration

Refused = psycopg.errors.InsufficientPrivilege
Frozen = psycopg.errors.IntegrityConstraintViolation
ISSUED_AT = datetime(2025, 4, 2, 9, 30, tzinfo=UTC)
_names = itertools.count()


def _role_name(kind: str) -> str:
    return f"mlt_{kind}_{os.getpid()}_{next(_names)}"


def _drop_role(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def _pipeline_login(url: str) -> Iterator[str]:
    """A login in meterline_pipeline only, as a deployment runs the DAGs (the embedded server
    trusts its local socket). Roles are cluster-wide: a unique name, dropped after the test."""
    name = _role_name("pipe")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("create role {} login in role meterline_pipeline").format(sql.Identifier(name)))
        yield make_conninfo(url, user=name)
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", [name])
        _drop_role(admin, name)


@pytest.fixture
def pipeline_url(warehouse_url: str) -> Iterator[str]:
    yield from _pipeline_login(warehouse_url)


@pytest.fixture
def month_pipeline_url(month_url: str) -> Iterator[str]:
    """The pipeline login on a copy of the built hand-written month."""
    yield from _pipeline_login(month_url)


@pytest.fixture
def pipe(pipeline_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit session of that login: current_user is the login, not the role it joins."""
    with psycopg.connect(pipeline_url, autocommit=True) as conn:
        yield conn


def _snapshot(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    q = conn.execute
    return {
        "invoices": q("select * from billing.invoices order by invoice_number").fetchall(),
        "lines": q("select * from billing.invoice_line_items order by invoice_id, line_no").fetchall(),
        "credit_notes": q("select * from billing.credit_notes order by credit_note_number").fetchall(),
        "counters": q("select * from billing.document_counters order by 1, 2").fetchall(),
        "audit": q("select action, resource from ops.audit_log order by audit_id").fetchall(),
        "protection": q(
            "select c.relname, c.relowner::regrole::text, c.relrowsecurity, c.relforcerowsecurity,"
            " (select array_agg((t.tgname, t.tgenabled)::text order by t.tgname) from pg_trigger t"
            "  where t.tgrelid = c.oid and not t.tgisinternal),"
            " (select array_agg(p.polname order by p.polname) from pg_policy p where p.polrelid = c.oid)"
            " from pg_class c where c.relnamespace = 'billing'::regnamespace and c.relkind = 'r' order by 1"
        ).fetchall(),
        "functions": q(
            "select p.oid::regprocedure::text, p.proowner::regrole::text, md5(p.prosrc) from pg_proc p"
            " where p.pronamespace = 'billing'::regnamespace order by 1"
        ).fetchall(),
    }


def test_the_pipeline_login_is_no_owner_and_cannot_become_one(pipe):
    assert pipe.execute(
        "select r.rolsuper, r.rolbypassrls, r.rolcreaterole, pg_has_role(current_user, 'meterline_pipeline', 'usage'),"
        " pg_has_role(current_user, 'meterline_billing_owner', 'member'),"
        " pg_has_role('meterline_pipeline', 'meterline_billing_owner', 'member')"
        " from pg_roles r where r.rolname = current_user"
    ).fetchone() == (False, False, False, True, False, False)
    assert pipe.execute(
        "select nspowner::regrole::text, has_schema_privilege('meterline_pipeline', oid, 'create')"
        " from pg_namespace where nspname = 'billing'"
    ).fetchone() == ("meterline_billing_owner", False)
    assert pipe.execute("select rolcanlogin from pg_roles where rolname = 'meterline_billing_owner'").fetchone() == (
        False,
    )
    with pytest.raises(Refused):
        pipe.execute("set role meterline_billing_owner")


def test_as_the_pipeline_every_change_to_an_issued_invoice_is_refused(pipe):
    invoice_id = issue_invoice(
        pipe, "INV-2025-000001", "t-0001", "USD", "143.00", issued_at=ISSUED_AT,
        lines=[{"kind": "base_fee", "amount": "100.00"}, {"metric_code": "llm_tokens", "quantity": 1500000,
                                                           "unit_price": "0.00002", "amount": "30.00"},
               {"kind": "adjustment", "amount": "13.00"}],
    )  # fmt: skip
    grant_id = uuid.uuid4()
    pipe.execute(
        "insert into billing.credit_grants (grant_id, tenant_id, amount, currency, reason, created_by)"
        " values (%s, 't-0001', 5.00, 'USD', 'goodwill', 'ops:ann')",
        [grant_id],
    )
    before = _snapshot(pipe)
    assert [r[0] for r in before["audit"]] == []  # nothing audited: nothing but inserts happened

    line = (
        "insert into billing.invoice_line_items (invoice_id, line_no, kind, description, amount)"
        f" values ('{invoice_id}', 4, 'adjustment', 'late usage', 1.50)"
    )
    refused_by_privilege = [
        "update billing.invoices set total = 1.00 where invoice_number = 'INV-2025-000001'",
        "update billing.invoices set status = 'void', voided_at = now(), void_reason = 'x', voided_by = 'x'",
        "update billing.invoices set content_hash = 'forged'",
        "update billing.invoice_line_items set amount = 0",
        "update billing.document_counters set last_number = 0",
        "update billing.credit_grants set amount = 500",
        "delete from billing.invoices",
        "delete from billing.invoice_line_items",
        "delete from billing.credit_grants",
        "truncate billing.invoices cascade",
        "truncate billing.invoice_line_items",
        "truncate billing.credit_grants cascade",
        "truncate billing.payment_txn cascade",
        "alter table billing.invoices disable trigger invoices_guard_update",
        "alter table billing.invoice_line_items disable trigger all",
        "alter table billing.invoices disable trigger invoices_sealed_at_commit",
        "drop trigger invoice_line_items_only_at_issue on billing.invoice_line_items",
        "drop trigger invoices_guard_update on billing.invoices",
        "alter table billing.invoices no force row level security",
        "alter table billing.invoices disable row level security",
        "drop policy meterline_tenant_read on billing.invoices",
        "alter table billing.invoices add column note text",
        "alter table billing.invoice_line_items alter column amount drop not null",
        "alter table billing.invoices owner to meterline_pipeline",
        "drop table billing.invoice_line_items",
        "create table billing.shadow (x int)",
        "create trigger mine before update on billing.invoices for each row execute function billing.stamp_issue()",
        "create or replace function billing.guard_invoice_update() returns trigger language plpgsql"
        " as $$ begin return new; end $$",
        "alter function billing.refuse_late_rows() owner to meterline_pipeline",
        "select * from billing.invoices for update",
        f"select billing.change_invoice_status('{invoice_id}', 'paid', 'me', 'x', 'invoice.paid', '{{}}')",
    ]
    for statement in refused_by_privilege:
        with pytest.raises(Refused):
            pipe.execute(statement)
    # A line into the issued invoice, a manual credit applied to it after issue: refused by the
    # database whoever writes them, with the reason.
    with pytest.raises(Frozen, match="INV-2025-000001 is issued, and a document's rows are written only by the"):
        pipe.execute(line)
    with pytest.raises(Frozen, match=r"into billing\.credit_applications refused: INV-2025-000001 is issued"):
        pipe.execute(
            "insert into billing.credit_applications (grant_id, invoice_id, amount) values (%s, %s, 5.00)",
            [grant_id, invoice_id],
        )
    # ... even in a transaction that changes its status (a row's xmin would let it through).
    with pytest.raises(Frozen, match="INV-2025-000001 is issued"), pipe.transaction():
        pipe.execute("select billing.dispute_invoice(%s, 'contested', 'ops:ann')", [invoice_id])
        pipe.execute(line)
    # Only the issuing transaction writes the hash, once.
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="INV-2025-000001 is sealed: only the"):
        pipe.execute("select billing.seal_invoice(%s)", [invoice_id])
    # A new invoice is inserted issued, never paid or void.
    with pytest.raises(Frozen, match="inserted as issued"):
        pipe.execute(
            "insert into billing.invoices (invoice_id, invoice_number, draft_id, tenant_id, subscription_id,"
            " period_start, period_end, currency, subtotal, credits, tax, total, status, issued_at)"
            " values (gen_random_uuid(), 'INV-2025-000002', 'D-x', 't-0002', gen_random_uuid(), '2025-03-01',"
            " '2025-04-01', 'USD', 1, 0, 0, 1, 'paid', now())"
        )
    # The status functions check the transition.
    with pytest.raises(
        psycopg.errors.ObjectNotInPrerequisiteState, match="INV-2025-000001 is issued: it cannot become issued"
    ):
        pipe.execute("select billing.resolve_invoice_dispute(%s, 'x', 'ops:ann')", [invoice_id])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="states its reason"):
        pipe.execute("select billing.void_invoice(%s, ' ', 'ops:ann')", [invoice_id])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="pay-404 not a succeeded payment applied to it"):
        pipe.execute("select billing.mark_invoice_paid(%s, array['pay-404'], 'ops:ann', '{}')", [invoice_id])

    assert _snapshot(pipe) == before  # not a figure, line, trigger, policy, function or audit row moved


def test_a_document_commits_only_sealed_with_the_hash_of_what_is_stored(pipe):
    def insert_invoice(number: str) -> uuid.UUID:
        invoice_id = uuid.uuid4()
        pipe.execute(
            "insert into billing.invoices (invoice_id, invoice_number, draft_id, tenant_id, subscription_id,"
            " period_start, period_end, currency, subtotal, credits, tax, total, status, issued_at)"
            " values (%s, %s, 'D-x', 't-0001', gen_random_uuid(), '2025-03-01', '2025-04-01', 'USD', 10, 0, 0, 10,"
            " 'issued', %s)",
            [invoice_id, number, ISSUED_AT],
        )
        pipe.execute(
            "insert into billing.invoice_line_items (invoice_id, line_no, kind, description, amount)"
            " values (%s, 1, 'base_fee', 'Base fee', 10)",
            [invoice_id],
        )
        return invoice_id

    unsealed = "INV-2025-000001 cannot be committed without its content hash"
    with pytest.raises(Frozen, match=unsealed), pipe.transaction():
        insert_invoice("INV-2025-000001")
    with pytest.raises(Frozen, match="INV-2025-000001 cannot be committed: its content hash"), pipe.transaction():
        invoice_id = insert_invoice("INV-2025-000001")
        pipe.execute("select billing.seal_invoice(%s)", [invoice_id])
        pipe.execute(
            "insert into billing.invoice_line_items (invoice_id, line_no, kind, description, amount)"
            " values (%s, 2, 'usage', 'after the seal', 5)",
            [invoice_id],
        )
    with pipe.transaction():  # making the check immediate only makes it fail sooner
        pipe.execute("set constraints all immediate")
        with pytest.raises(Frozen, match=unsealed), pipe.transaction():
            insert_invoice("INV-2025-000001")
    assert pipe.execute("select count(*) from billing.invoices").fetchone() == (0,)

    with pipe.transaction():
        invoice_id = insert_invoice("INV-2025-000001")
        sealed = pipe.execute("select billing.seal_invoice(%s)", [invoice_id]).fetchone()[0]
        assert pipe.execute("select billing.seal_invoice(%s)", [invoice_id]).fetchone() == (sealed,)  # once
    assert pipe.execute(
        "select content_hash, billing.invoice_content_hash(invoice_id),"
        " encode(sha256(convert_to(billing.invoice_canonical(invoice_id), 'UTF8')), 'hex') from billing.invoices"
    ).fetchone() == (sealed, sealed, sealed)
    # The canonical text names every figure and line; neither TimeZone nor DateStyle moves it.
    canonical = pipe.execute("select billing.invoice_canonical(%s)", [invoice_id]).fetchone()[0]
    pipe.execute("set timezone = 'Asia/Tokyo'")
    pipe.execute("set datestyle = 'SQL, DMY'")
    assert pipe.execute("select billing.invoice_content_hash(%s)", [invoice_id]).fetchone() == (sealed,)
    assert '"issued_at": "2025-04-02T09:30:00.000000Z"' in canonical and '"total": 10' in canonical
    assert '"lines": [{"kind": "base_fee", "amount": 10, "line_no": 1,' in canonical


def test_every_legitimate_path_works_as_the_pipeline_and_audits_exactly(month_pipeline_url, tmp_path):
    pipeline_url = month_pipeline_url  # the built month; everything below runs as the pipeline login
    outbox, landing = str(tmp_path / "outbox"), tmp_path / "landing"
    pass_gate(pipeline_url)
    assert emit(pipeline_url, PERIOD, outbox, issued_at=ISSUED_AT).issued == [
        "INV-2025-000001",
        "INV-2025-000002",
        "INV-2025-000003",
    ]
    corrections.dispute_invoice(pipeline_url, "INV-2025-000001", reason="3 days of outage", actor="ops:ann")
    corrections.resolve_dispute(pipeline_url, "INV-2025-000001", reason="logs show uptime", actor="ops:bob")
    corrections.void_and_regenerate(
        pipeline_url, "INV-2025-000002", reason="wrong plan (INC-9)", actor="ops:bob", outbox_url=outbox,
        issued_at=datetime(2025, 4, 10, tzinfo=UTC),
    )  # fmt: skip
    corrections.issue_credit_note(
        pipeline_url, "INV-2025-000003", reason="goodwill", actor="ops:ann", amount=Decimal("1000"),
        outbox_url=outbox, issued_at=datetime(2025, 4, 11, tzinfo=UTC),
    )  # fmt: skip
    # 100.00 of 143.00 paid (underpaid), then the rest: paid, and the mismatch settled.
    export = landing / "payments" / "2025-04"
    export.mkdir(parents=True)
    header = "payment_id,invoice_number,amount,currency,status,paid_at\n"
    (export / "a.csv").write_text(header + "py-1,INV-2025-000001,100.00,USD,succeeded,2025-04-12T10:00:00Z\n")
    assert load_payments(pipeline_url, str(landing)).paid == []
    (export / "b.csv").write_text(header + "py-2,INV-2025-000001,43.00,USD,succeeded,2025-04-13T10:00:00Z\n")
    assert load_payments(pipeline_url, str(landing)).paid == ["INV-2025-000001"]

    with psycopg.connect(pipeline_url, autocommit=True) as pipe:
        invoice_ids = dict(pipe.execute("select invoice_number, invoice_id::text from billing.invoices").fetchall())
        assert pipe.execute(
            "select invoice_number, status, total, void_reason, voided_by, voided_at is not null from billing.invoices"
            " order by 1"
        ).fetchall() == [
            ("INV-2025-000001", "paid", TOTALS["t-0001"], None, None, False),
            ("INV-2025-000002", "void", TOTALS["t-0002"], "wrong plan (INC-9)", "ops:bob", True),
            ("INV-2025-000003", "issued", TOTALS["t-0003"], None, None, False),
            ("INV-2025-000004", "issued", TOTALS["t-0002"], None, None, False),
        ]
        assert pipe.execute("select credit_note_number, total from billing.credit_notes").fetchall() == [
            ("CN-2025-000001", Decimal("-1100"))  # 1000 + 10 % tax, in yen
        ]
        audit = pipe.execute(
            "select action, resource, actor, metadata from ops.audit_log"
            " where split_part(action, '.', 1) in ('invoice', 'credit_note', 'credit', 'payment_mismatch')"
            " order by audit_id"
        ).fetchall()
        assert [row[:3] for row in audit] == [
            ("invoice.issued", "invoice:INV-2025-000001", "emitter"),
            ("invoice.issued", "invoice:INV-2025-000002", "emitter"),
            ("invoice.issued", "invoice:INV-2025-000003", "emitter"),
            ("invoice.disputed", "invoice:INV-2025-000001", "ops:ann"),
            ("invoice.dispute_resolved", "invoice:INV-2025-000001", "ops:bob"),
            ("invoice.voided", "invoice:INV-2025-000002", "ops:bob"),
            ("invoice.issued", "invoice:INV-2025-000004", "ops:bob"),
            ("invoice.regenerated", "invoice:INV-2025-000004", "ops:bob"),
            ("credit_note.issued", "credit_note:CN-2025-000001", "ops:ann"),
            ("payment_mismatch.resolved", "payment:py-1", "meterline.payments"),
            ("invoice.paid", "invoice:INV-2025-000001", "meterline.payments"),
        ]
        status_rows = {(action, resource): metadata for action, resource, _, metadata in audit}
        assert status_rows[("invoice.disputed", "invoice:INV-2025-000001")] == {
            "invoice_id": invoice_ids["INV-2025-000001"], "reason": "3 days of outage", "previous_status": "issued",
        }  # fmt: skip
        assert status_rows[("invoice.dispute_resolved", "invoice:INV-2025-000001")] == {
            "invoice_id": invoice_ids["INV-2025-000001"], "reason": "logs show uptime", "previous_status": "disputed",
        }  # fmt: skip
        assert status_rows[("invoice.voided", "invoice:INV-2025-000002")] == {
            "invoice_id": invoice_ids["INV-2025-000002"], "reason": "wrong plan (INC-9)", "previous_status": "issued",
            "total": "240.80", "currency": "EUR",
        }  # fmt: skip
        assert status_rows[("invoice.paid", "invoice:INV-2025-000001")] == {
            "invoice_id": invoice_ids["INV-2025-000001"], "previous_status": "issued", "owed": "143.00",
            "paid": "143.00", "currency": "USD", "payment_ids": ["py-2"],
        }  # fmt: skip
        assert status_rows[("payment_mismatch.resolved", "payment:py-1")] == {
            "status": "succeeded", "reason": "underpaid", "invoice_number": "INV-2025-000001", "amount": "43.00",
            "currency": "USD", "resolved_by": "py-2",
        }  # fmt: skip
        # Every document carries the hash the warehouse stores and recomputes; the gate agrees.
        stored = dict(pipe.execute("select invoice_number, content_hash from billing.invoices").fetchall())
        stored |= dict(pipe.execute("select credit_note_number, content_hash from billing.credit_notes").fetchall())
        for number, content_hash in stored.items():
            folder = "credit_notes" if number.startswith("CN") else "invoices"
            body = Path(outbox, folder, "2025-03", f"{number}.json").read_text()
            assert f'"content_hash": "{content_hash}"' in body, number
            kind = "credit_note" if number.startswith("CN") else "invoice"
            assert status_rows[(f"{kind}.issued", f"{kind}:{number}")]["content_hash"] == content_hash, number
        assert integrity.hash_mismatches(pipe) == []
        assert integrity.content_hash_check(pipe).passed
    regenerated = status_rows[("invoice.issued", "invoice:INV-2025-000004")]
    assert (regenerated["draft_id"], regenerated["replaces_invoice_id"]) == (
        DRAFT["t-0002"],
        invoice_ids["INV-2025-000002"],
    )
    credit_note = status_rows[("credit_note.issued", "credit_note:CN-2025-000001")]
    assert {k: v for k, v in credit_note.items() if k not in ("documents", "content_hash")} == {
        "invoice": "INV-2025-000003", "reason": "goodwill", "subtotal": "-1000", "tax": "-100", "total": "-1100",
        "currency": "JPY",
    }  # fmt: skip


@pytest.mark.slow  # two dbt test runs: ~20 s
def test_a_document_changed_above_the_pipeline_fails_the_gate_and_the_dbt_test(db, warehouse_url, pipe):
    issue_invoice(pipe, "INV-2025-000001", "t-0001", "USD", "143.00", lines=[{"amount": "143.00"}])
    issue_invoice(pipe, "INV-2025-000002", "t-0002", "EUR", "50.00", lines=[{"amount": "50.00"}])

    def dbt_test() -> tuple[int, str]:
        done = transform.run(
            ["test", "--select", "assert_issued_documents_match_their_content_hash"],
            warehouse_url, check=False, capture_output=True, text=True,
        )  # fmt: skip
        return done.returncode, done.stdout

    code, out = dbt_test()
    assert code == 0 and "PASS=1" in out, out[-2000:]
    assert integrity.content_hash_check(pipe).passed

    # A superuser (a role above the pipeline) sets an issued total to 1.00 behind the triggers.
    with psycopg.connect(warehouse_url, autocommit=True) as superuser, superuser.transaction():
        superuser.execute("set local session_replication_role = replica")
        superuser.execute("update billing.invoices set total = 1.00 where invoice_number = 'INV-2025-000002'")
    assert integrity.hash_mismatches(pipe) == [
        integrity.HashMismatch(
            "invoice",
            "INV-2025-000002",
            *pipe.execute(
                "select content_hash, billing.invoice_content_hash(invoice_id) from billing.invoices"
                " where invoice_number = 'INV-2025-000002'"
            ).fetchone(),
        )
    ]
    check = integrity.content_hash_check(pipe)
    assert (check.name, check.scope, check.passed) == ("content_hash", "period", False)
    assert check.reason.startswith("1 issued document(s) no longer match their content hash: INV-2025-000002;")
    code, out = dbt_test()
    assert code == 1 and "FAIL 1 assert_issued_documents_match_their_content_hash" in out, out[-2000:]


def test_the_migration_applies_to_a_warehouse_already_holding_invoices(server_url, monkeypatch):
    """A warehouse bootstrapped before 090, with an invoice, a credit note and a Python-era hash;
    then bootstrapped again: handed over, re-hashed once with the old hash kept in the audit log."""
    name = _role_name("db_upgrade")
    conninfo = warehouse.with_database(server_url, name)
    everything = warehouse._migrations()
    try:
        monkeypatch.setattr(warehouse, "_migrations", lambda: [m for m in everything if m[0] < "090"])
        assert "090_billing_owner.sql" not in warehouse.bootstrap(conninfo)
        invoice_id, note_id = uuid.uuid4(), uuid.uuid4()
        with warehouse.transaction(conninfo) as old:  # what the pipeline wrote before 090
            old.execute(
                "insert into billing.invoices (invoice_id, invoice_number, draft_id, tenant_id, subscription_id,"
                " period_start, period_end, currency, subtotal, credits, tax, total, status, issued_at,"
                " content_hash) values (%s, 'INV-2025-000001', 'D-1', 't-0001', gen_random_uuid(), '2025-03-01',"
                " '2025-04-01', 'USD', 100.00, 0, 10.00, 110.00, 'issued', %s, 'python-era-hash')",
                [invoice_id, ISSUED_AT],
            )
            old.execute(
                "insert into billing.invoice_line_items (invoice_id, line_no, kind, description, amount)"
                " values (%s, 1, 'base_fee', 'Base fee', 100.00)",
                [invoice_id],
            )
            old.execute(
                "insert into billing.credit_notes (credit_note_id, credit_note_number, invoice_id, tenant_id, currency,"
                " subtotal, tax, total, reason, created_by, issued_at, content_hash) values (%s, 'CN-2025-000001', %s,"
                " 't-0001', 'USD', -10.00, -1.00, -11.00, 'goodwill', 'ops', %s, 'python-era-cn-hash')",
                [note_id, invoice_id, ISSUED_AT],
            )
        monkeypatch.setattr(warehouse, "_migrations", lambda: everything)
        # 090 and whatever came after it, in order
        assert warehouse.bootstrap(conninfo) == [name for name, _ in everything if name >= "090"]
        assert warehouse.bootstrap(conninfo) == []  # and the next bootstrap leaves billing to its owner

        with warehouse.connect(conninfo, autocommit=True) as pipe:
            assert pipe.execute(
                "select count(*) filter (where relowner <> 'meterline_billing_owner'::regrole), count(*)"
                " from pg_class where relnamespace = 'billing'::regnamespace and relkind in ('r', 'v')"
            ).fetchone() == (0, 11)
            assert pipe.execute(
                "select nspowner::regrole::text from pg_namespace where nspname = 'billing'"
            ).fetchone() == ("meterline_billing_owner",)
            hashes = pipe.execute(
                "select content_hash = billing.invoice_content_hash(invoice_id), length(content_hash), issued_xact"
                " from billing.invoices"
            ).fetchone()
            assert hashes == (True, 64, None)
            assert pipe.execute(
                "select action, resource, actor, metadata ->> 'previous_content_hash' from ops.audit_log order by 1"
            ).fetchall() == [
                ("credit_note.content_hash_redefined", "credit_note:CN-2025-000001", "migration 090_billing_owner",
                 "python-era-cn-hash"),
                ("invoice.content_hash_redefined", "invoice:INV-2025-000001", "migration 090_billing_owner",
                 "python-era-hash"),
            ]  # fmt: skip
            assert integrity.hash_mismatches(pipe) == []
            with pytest.raises(Frozen, match="INV-2025-000001 is issued"):  # issued before 090: closed too
                pipe.execute(
                    "insert into billing.invoice_line_items (invoice_id, line_no, kind, description, amount)"
                    " values (%s, 2, 'usage', 'late', 1)",
                    [invoice_id],
                )
            with pytest.raises(Refused):
                pipe.execute("update billing.invoices set total = 1")
            pipe.execute("select billing.void_invoice(%s, 'migrated test', 'ops:ann')", [invoice_id])
            assert pipe.execute("select status, void_reason from billing.invoices").fetchone() == (
                "void",
                "migrated test",
            )
    finally:
        warehouse.drop_database(server_url, name)


def test_a_bootstrap_login_that_is_not_a_superuser_migrates(server_url, template_db):
    """The WAREHOUSE_URL login of a server of one's own (docker-compose's `meterline`): CREATEROLE,
    owner of its database, and admin of the meterline roles (it created them on a fresh server;
    on this shared test server they exist already, so they are granted to it). `template_db`:
    the session's bootstrap made the roles."""
    login, database = _role_name("admin"), _role_name("db_admin")
    roles = ("meterline_pipeline", "meterline_billing_owner", "meterline_analyst", "meterline_operator",
             "meterline_tenant", "meterline_tenant_app", "meterline_tenant_reader")  # fmt: skip
    with psycopg.connect(warehouse.with_database(server_url, "postgres"), autocommit=True) as su:
        su.execute(sql.SQL("create role {} login createrole").format(sql.Identifier(login)))
        for role in roles:
            su.execute(sql.SQL("grant {} to {} with admin option").format(sql.Identifier(role), sql.Identifier(login)))
        su.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(database), sql.Identifier(login)))
        try:
            conninfo = make_conninfo(warehouse.with_database(server_url, database), user=login)
            applied = warehouse.bootstrap(conninfo)
            assert applied == [name for name, _ in warehouse._migrations()]
            with psycopg.connect(conninfo, autocommit=True) as conn:
                assert conn.execute(
                    "select r.rolsuper, (select nspowner::regrole::text from pg_namespace where nspname = 'billing'),"
                    " (select count(*) from pg_proc where pronamespace = 'billing'::regnamespace"
                    "  and proowner <> 'meterline_billing_owner'::regrole)"
                    " from pg_roles r where r.rolname = current_user"
                ).fetchone() == (False, "meterline_billing_owner", 0)
        finally:
            warehouse.drop_database(server_url, database)
            _drop_role(su, login)
