"""Who may read what, connecting as each role on the real warehouse: the analyst reads marts and
billing only, the operator every schema by unqualified name, a tenant only its own rows through
the `tenant` views (row-level security, 080_access.sql and dbt's tenant_access post-hook), and
the pipeline still writes what it writes (the emitter, a credit note, dbt rebuilds). What the
pipeline may not do to billing is in test_billing_immutable.py."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest
from _issued import issue_invoice
from handwritten_month import PERIOD, SUB, TOTALS
from psycopg import sql

from meterline import transform
from meterline.invoicing.corrections import issue_credit_note
from meterline.invoicing.emit import emit

pytestmark = pytest.mark.integration

Refused = psycopg.errors.InsufficientPrivilege
_roles = itertools.count()


def login(url: str, role: str) -> psycopg.Connection:
    """A connection logged in as `role` (the embedded server trusts its local socket)."""
    return psycopg.connect(url, user=role, autocommit=True)


def refused(conn: psycopg.Connection, query: str) -> bool:
    try:
        conn.execute(query)
    except Refused:
        return True
    return False


@pytest.fixture
def new_login(warehouse_url: str) -> Iterator[Callable[..., str]]:
    """Makes a login role in a group role as an administrator would; with `tenant_id`, mapped to
    that tenant in ops.tenant_users. Roles are cluster-wide: unique names, dropped after the test."""
    made: list[str] = []
    admin = psycopg.connect(warehouse_url, autocommit=True)

    def make(group: str, tenant_id: str | None = None) -> str:
        name = f"mlt_login_{os.getpid()}_{next(_roles)}"
        admin.execute(sql.SQL("create role {} login in role {}").format(sql.Identifier(name), sql.Identifier(group)))
        made.append(name)
        if tenant_id:
            admin.execute("insert into ops.tenant_users (role_name, tenant_id) values (%s, %s)", [name, tenant_id])
        return name

    yield make
    for name in made:
        admin.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))  # e.g. its temp functions
        admin.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))
    admin.close()


def put_invoice(db: psycopg.Connection, tenant_id: str, number: str, total: str, lines: int) -> uuid.UUID:
    """An issued invoice and its lines written straight by the pipeline role (RLS forced)."""
    share = (Decimal(total) / lines).quantize(Decimal("0.01"))
    amounts = [share] * (lines - 1) + [Decimal(total) - share * (lines - 1)]  # adds up to the total
    return issue_invoice(
        db, number, tenant_id, "USD", total, issued_at="2025-04-02T00:00:00Z",
        lines=[{"description": f"{number} line {no}", "amount": amount} for no, amount in enumerate(amounts, start=1)],
    )  # fmt: skip


def test_analyst_reads_marts_and_billing_only_and_changes_nothing(db, warehouse_url):
    # Created after bootstrap by the pipeline, as dbt and later migrations create them.
    db.execute("create table marts.t_built_later (x int)")
    db.execute("insert into marts.t_built_later values (1), (2)")
    db.execute("create view staging.t_stage as select 1 as x")
    db.execute("create table intermediate.t_step (x int)")
    put_invoice(db, "T001", "INV-2025-000001", "100.00", 2)
    put_invoice(db, "T002", "INV-2025-000002", "50.00", 1)

    with login(warehouse_url, "meterline_analyst") as analyst:
        assert analyst.execute("select count(*) from marts.t_built_later").fetchone() == (2,)
        # Every row of the RLS-protected billing tables (the analysts' policy), and the views over them.
        assert analyst.execute("select count(*) from billing.invoices").fetchone() == (2,)
        assert analyst.execute("select count(*) from billing.invoice_line_items").fetchone() == (3,)
        assert analyst.execute(
            "select invoice_number, balance_due from billing.invoice_balances order by 1"
        ).fetchall() == [("INV-2025-000001", Decimal("100.00")), ("INV-2025-000002", Decimal("50.00"))]
        for query in (
            "select count(*) from raw.events",
            "select properties from raw.events",
            "select count(*) from raw.catalog_tenants",
            "select count(*) from staging.t_stage",
            "select count(*) from intermediate.t_step",
            "select count(*) from ops.audit_log",
            "select count(*) from ops.tenant_users",
            "select count(*) from tenant.invoices",
            "insert into billing.invoices (invoice_id) values (gen_random_uuid())",
            "update billing.invoices set status = 'paid'",
            "delete from billing.invoice_line_items",
            "insert into marts.t_built_later values (3)",
            "create table marts.t_mine (x int)",
        ):
            assert refused(analyst, query), query
        assert analyst.execute("select count(*) from billing.invoices where status = 'issued'").fetchone() == (2,)

    # The whole catalogue: the analyst may read exactly the relations of marts and billing.
    relations = db.execute(
        "select n.nspname, c.relname, has_table_privilege('meterline_analyst', c.oid, 'select')"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('raw', 'staging', 'intermediate', 'marts', 'billing', 'ops', 'tenant')"
        " and c.relkind in ('r', 'p', 'v', 'm')"
    ).fetchall()
    readable = {(s, r) for s, r, ok in relations if ok}
    assert readable == {(s, r) for s, r, _ in relations if s in ("marts", "billing")}
    assert ("billing", "invoices") in readable and ("raw", "events") not in readable
    # No column holding raw event properties is readable by the analyst anywhere.
    exposed = db.execute(
        "select a.attrelid::regclass::text from pg_attribute a join pg_class c on c.oid = a.attrelid"
        " where a.attname = 'properties' and not a.attisdropped"
        " and has_column_privilege('meterline_analyst', a.attrelid, a.attnum, 'select')"
    ).fetchall()
    assert exposed == []


def test_operator_and_deployment_login_read_every_row(db, warehouse_url, new_login):
    first = put_invoice(db, "T001", "INV-2025-000001", "100.00", 2)
    put_invoice(db, "T002", "INV-2025-000002", "50.00", 1)
    role = new_login("meterline_tenant", "T001")
    with login(warehouse_url, "meterline_operator") as op:
        # billing.invoices (RLS forced) through search_path marts, billing, ops, raw: every row.
        assert op.execute("select tenant_id, count(*) from invoice_line_items join invoices using (invoice_id)"
                          " group by 1 order by 1").fetchall() == [("T001", 2), ("T002", 1)]  # fmt: skip
        assert op.execute("select tenant_id from tenant_users where role_name = %s", [role]).fetchall() == [("T001",)]
        assert op.execute("select count(*) from events").fetchone() == (0,)
        assert refused(op, "update invoices set status = 'paid'")
        assert refused(op, "select count(*) from tenant.invoices")
    # A deployment's login that joins the pipeline role without SET ROLE (as great-expectations
    # connects) keeps the pipeline's every-row policy: it reads every row and issues documents,
    # and, like the pipeline, never adds a line to an invoice issued before.
    with login(warehouse_url, new_login("meterline_pipeline")) as deploy:
        assert deploy.execute("select count(*) from billing.invoice_line_items").fetchone() == (3,)
        issue_invoice(deploy, "INV-2025-000003", "T003", "USD", "1.50", lines=[{"amount": "1.50"}])
        assert deploy.execute("select count(*) from billing.invoice_line_items").fetchone() == (4,)
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="INV-2025-000001 is issued"):
            deploy.execute("insert into billing.invoice_line_items (invoice_id, line_no, kind, description, amount)"
                           " values (%s, 3, 'adjustment', 'late usage', 1.50)", [first])  # fmt: skip


def test_tenant_views_show_each_tenant_only_its_rows(gated_month_db, gated_month_url, tmp_path):
    # A real month through the real emitter and a real credit note: the pipeline writes with
    # row-level security forced on billing. The month as the suites and a passing gate left it
    # (handwritten_month.pass_gate).
    db, warehouse_url = gated_month_db, gated_month_url
    result = emit(warehouse_url, PERIOD, str(tmp_path / "outbox"), issued_at=datetime(2025, 4, 2, tzinfo=UTC))
    assert len(result.issued) == 3
    issue_credit_note(warehouse_url, "INV-2025-000002", reason="goodwill", actor="ops@example.com",
                      amount=Decimal("20.00"), outbox_url=str(tmp_path / "outbox"),
                      issued_at=datetime(2025, 4, 20, tzinfo=UTC))  # fmt: skip
    invoice_of = dict(db.execute("select tenant_id, invoice_id from billing.invoices").fetchall())
    db.execute(
        "insert into billing.payment_txn (payment_id, status, invoice_number, invoice_id, amount, currency, paid_at,"
        " match_status, source_file, line_no) values"
        " ('pay-1', 'succeeded', 'INV-2025-000001', %s, 143.00, 'USD', '2025-04-10', 'applied', 'p.csv', 1),"
        " ('pay-2', 'succeeded', 'INV-2099-000009', null, 5.00, 'USD', '2025-04-11', 'mismatch', 'p.csv', 2)",
        [invoice_of["t-0001"]],
    )

    # What each tenant owns, counted by the pipeline from the tables themselves.
    def truth(tenant: str) -> dict[str, object]:
        q = db.execute
        return {
            "invoices": q("select invoice_number, total, status from billing.invoices where tenant_id = %s"
                          " order by 1", [tenant]).fetchall(),
            "lines": q("select count(*) from billing.invoice_line_items l join billing.invoices i using (invoice_id)"
                       " where i.tenant_id = %s", [tenant]).fetchone()[0],
            "credit_notes": q("select credit_note_number, total from billing.credit_notes where tenant_id = %s",
                              [tenant]).fetchall(),
            "payments": q("select p.payment_id from billing.payment_txn p join billing.invoices i using (invoice_id)"
                          " where i.tenant_id = %s", [tenant]).fetchall(),
        }  # fmt: skip

    def seen(conn: psycopg.Connection) -> dict[str, object]:
        q = conn.execute
        return {
            "invoices": q("select invoice_number, total, status from tenant.invoices order by 1").fetchall(),
            "lines": q("select count(*) from tenant.invoice_lines").fetchone()[0],
            "credit_notes": q("select credit_note_number, total from tenant.credit_notes").fetchall(),
            "payments": q("select payment_id from tenant.payments").fetchall(),
        }

    t1, t2, t3 = truth("t-0001"), truth("t-0002"), truth("t-0003")
    assert t1 == {"invoices": [("INV-2025-000001", TOTALS["t-0001"], "issued")], "lines": 2, "credit_notes": [],
                  "payments": [("pay-1",)]}  # fmt: skip
    assert t2["invoices"] == [("INV-2025-000002", Decimal("240.80"), "issued")] and t2["lines"] == 3
    assert t2["credit_notes"] == [("CN-2025-000001", Decimal("-23.80"))]  # 20.00 + 19 % tax, credited
    assert t3["lines"] == 2 and t3["payments"] == []

    # Row-level security on, forced (the owner too), four policies, views owned by the reader.
    assert db.execute(
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity, array_agg(p.polname order by p.polname)"
        " from pg_class c join pg_policy p on p.polrelid = c.oid where c.relnamespace = 'billing'::regnamespace"
        " group by 1, 2, 3 order by 1"
    ).fetchall() == [
        (
            table,
            True,
            True,
            ["meterline_billing_owner_all", "meterline_pipeline_all", "meterline_staff_read", "meterline_tenant_read"],
        )
        for table in ("credit_notes", "invoice_line_items", "invoices", "payment_txn")
    ]
    assert db.execute("select viewname, viewowner from pg_views where schemaname = 'tenant' and viewname in"
                      " ('credit_notes', 'invoice_lines', 'invoices', 'payments') order by 1").fetchall() == [
        (v, "meterline_tenant_reader") for v in ("credit_notes", "invoice_lines", "invoices", "payments")
    ]  # fmt: skip

    nothing = {"invoices": [], "lines": 0, "credit_notes": [], "payments": []}
    with login(warehouse_url, "meterline_tenant_app") as portal:
        assert seen(portal) == nothing  # no tenant named: no rows
        portal.execute("set meterline.tenant_id = 't-0001'")
        assert seen(portal) == t1
        portal.execute("set meterline.tenant_id = 't-0002'")
        assert seen(portal) == t2
        with portal.transaction():  # how the portal should do it: per request, gone at commit
            portal.execute("select set_config('meterline.tenant_id', 't-0003', true)")
            assert seen(portal) == t3
        assert seen(portal) == t2
        portal.execute("set meterline.tenant_id = ''")
        assert seen(portal) == nothing
        portal.execute("set meterline.tenant_id = 't-0001'")
        # Only the views: not the tables under them, nor the marts, nor the mapping.
        for query in (
            "select count(*) from billing.invoices",
            "select count(*) from billing.invoice_line_items",
            "select count(*) from marts.invoice_header",
            "select count(*) from raw.catalog_tenants",
            "select count(*) from ops.tenant_users",
            "insert into tenant.invoices (invoice_id) values (gen_random_uuid())",
            "delete from tenant.invoice_lines",
            "create view tenant.mine as select 1 as x",
        ):
            assert refused(portal, query), query
    # The subscriptions of the month belong to the tenants the views showed.
    assert {str(s) for s in SUB.values()} == {
        str(r[0]) for r in db.execute("select subscription_id from billing.invoices").fetchall()
    }


def test_a_tenant_login_sees_its_tenant_whatever_it_sets(db, warehouse_url, new_login):
    own = put_invoice(db, "T002", "INV-2025-000002", "50.00", 3)
    put_invoice(db, "T001", "INV-2025-000001", "100.00", 2)
    put_invoice(db, "T003", "INV-2025-000003", "7.00", 1)
    role = new_login("meterline_tenant", "T002")
    with login(warehouse_url, role) as tenant:

        def numbers() -> list[str]:
            return [r[0] for r in tenant.execute("select invoice_number from tenant.invoices order by 1")]

        assert numbers() == ["INV-2025-000002"]
        assert tenant.execute("select count(*), sum(amount) from tenant.invoice_lines").fetchone() == (
            3,
            Decimal("50.00"),
        )
        # The setting is the portal's; for a mapped login it changes nothing.
        tenant.execute("set meterline.tenant_id = 'T001'")
        assert numbers() == ["INV-2025-000002"]
        # Acting as the shared group role makes it no tenant at all; the portal role is not its to take.
        tenant.execute("set role meterline_tenant")
        assert numbers() == []
        tenant.execute("reset role")
        assert refused(tenant, "set role meterline_tenant_app")
        assert tenant.execute("select tenant.tenant_of('meterline_tenant_app')").fetchone() == (None,)
        assert tenant.execute("select tenant.tenant_of(current_user)").fetchone() == ("T002",)
        assert refused(tenant, "select count(*) from billing.invoices")
        assert refused(tenant, "select count(*) from ops.tenant_users")
        # A function of its own sees only the rows the policies let through (no leak by a cheap
        # function evaluated before the filter).
        tenant.execute(
            "create function pg_temp.peek(text) returns boolean language plpgsql cost 0.0000001 as"
            " $$ begin raise notice 'saw %', $1; return true; end $$"
        )
        seen: list[str] = []
        tenant.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
        rows = tenant.execute("select description from tenant.invoice_lines where pg_temp.peek(description)").fetchall()
        assert sorted(r[0] for r in rows) == [f"INV-2025-000002 line {n}" for n in (1, 2, 3)]
        assert sorted(seen) == [f"saw INV-2025-000002 line {n}" for n in (1, 2, 3)]
        tenant.execute("drop function pg_temp.peek(text)")
    assert db.execute("select count(*) from billing.invoice_line_items where invoice_id = %s", [own]).fetchone() == (3,)


USAGE_EVENTS = [
    # tenant, subscription, event type, timestamp, tokens
    ("T001", 0, "llm.completion", "2025-03-03T10:05:00Z", 100),
    ("T001", 0, "llm.completion", "2025-03-03T11:30:00Z", 50),
    ("T001", 0, "llm.completion", "2025-03-04T09:00:00Z", 25),
    ("T001", 1, "api.request", "2025-03-03T12:00:00Z", None),
    ("T001", 1, "api.request", "2025-03-03T12:10:00Z", None),
    ("T002", 0, "llm.completion", "2025-03-05T08:00:00Z", 1000),
]
USAGE_SELECT = ["--select", "+usage_daily", "+usage_monthly", "+usage_snapshot_daily", "--vars",
                "{usage_lookback_minutes: 0}", "--quiet"]  # fmt: skip


def test_tenant_usage_views_and_analyst_grants_survive_dbt_rebuilds(db, warehouse_url):
    subs = {
        (t, n): uuid.uuid5(uuid.NAMESPACE_URL, f"access/{t}/{n}") for t, n in (("T001", 0), ("T001", 1), ("T002", 0))
    }
    for (tenant, _), sub in subs.items():
        db.execute(
            "insert into raw.catalog_subscriptions (subscription_id, tenant_id, plan_id, started_at, source_file)"
            " values (%s, %s, 'starter', '2025-01-01T00:00:00Z', 'catalog/subscriptions.csv')",
            [sub, tenant],
        )
    db.execute(
        "insert into raw.catalog_metrics (metric_code, event_type, aggregation, property, unit, source_file) values"
        " ('llm_tokens', 'llm.completion', 'sum', 'tokens', 'tokens', 'catalog/metrics.csv'),"
        " ('api_requests', 'api.request', 'count', null, 'requests', 'catalog/metrics.csv')"
    )
    db.execute(
        "insert into raw.catalog_quotas (subscription_id, event_type, limit_value, period, action, source_file)"
        " values (%s, 'llm.completion', 1000, 'month', 'block', 'catalog/quotas.csv')",
        [subs[("T001", 0)]],
    )

    def load(events: list[tuple]) -> None:
        for tenant, n, event_type, ts, tokens in events:
            db.execute(
                'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties,'
                ' "timestamp", source_file, line_no, partition_date)'
                " values (%s, %s, %s, %s, %s, %s, 'events/x.jsonl', 1, %s::timestamptz::date)",
                [uuid.uuid4(), f"k-{uuid.uuid4()}", subs[(tenant, n)], event_type,
                 psycopg.types.json.Jsonb({} if tokens is None else {"tokens": tokens}), ts, ts],
            )  # fmt: skip

    def dbt_run() -> None:
        done = transform.run(["run", *USAGE_SELECT], warehouse_url, check=False, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-4000:]

    def truth(tenant: str) -> dict[str, list[tuple]]:
        ids = [s for (t, _), s in subs.items() if t == tenant]
        q = db.execute
        return {
            "daily": q("select subscription_id, event_type, day, event_count, total_tokens from marts.usage_daily"
                       " where subscription_id = any(%s) order by 1, 2, 3", [ids]).fetchall(),
            "monthly": q("select subscription_id, event_type, month, event_count from marts.usage_monthly"
                         " where subscription_id = any(%s) order by 1, 2, 3", [ids]).fetchall(),
            "quota": q("select metric_code, snapshot_date, metric_value, cap_value, utilization"
                       " from marts.usage_snapshot_daily where tenant_id = %s order by 1, 2", [tenant]).fetchall(),
        }  # fmt: skip

    def seen(conn: psycopg.Connection) -> dict[str, list[tuple]]:
        q = conn.execute
        return {
            "daily": q("select subscription_id, event_type, day, event_count, total_tokens from tenant.usage_daily"
                       " order by 1, 2, 3").fetchall(),
            "monthly": q("select subscription_id, event_type, month, event_count from tenant.usage_monthly"
                         " order by 1, 2, 3").fetchall(),
            "quota": q("select metric_code, snapshot_date, metric_value, cap_value, utilization"
                       " from tenant.quota_utilization order by 1, 2").fetchall(),
        }  # fmt: skip

    def protected() -> dict[str, tuple]:
        return {
            name: tuple(row)
            for name, *row in db.execute(
                "select c.relname, c.oid, c.relrowsecurity, c.relforcerowsecurity,"
                " (select count(*) from pg_policy p where p.polrelid = c.oid)"
                " from pg_class c where c.relnamespace = 'marts'::regnamespace"
                " and c.relname in ('usage_daily', 'usage_monthly', 'usage_snapshot_daily', 'usage_hourly')"
            ).fetchall()
        }

    def check(expect_t2_daily: int) -> dict[str, tuple]:
        state = protected()
        for mart in ("usage_daily", "usage_monthly", "usage_snapshot_daily"):
            assert state[mart][1:] == (True, True, 3), mart  # RLS on, forced, three policies
        assert state["usage_hourly"][1:] == (False, False, 0)  # not tenant-facing: untouched
        owners = dict(
            db.execute(
                "select viewname, viewowner from pg_views where schemaname = 'tenant'"
                " and viewname in ('usage_daily', 'usage_monthly', 'quota_utilization')"
            ).fetchall()
        )
        assert owners == dict.fromkeys(("usage_daily", "usage_monthly", "quota_utilization"), "meterline_tenant_reader")
        t1, t2 = truth("T001"), truth("T002")
        assert len(t2["daily"]) == expect_t2_daily
        with login(warehouse_url, "meterline_tenant_app") as portal:
            assert seen(portal) == {"daily": [], "monthly": [], "quota": []}
            portal.execute("set meterline.tenant_id = 'T001'")
            assert seen(portal) == t1
            portal.execute("set meterline.tenant_id = 'T002'")
            assert seen(portal) == t2
            assert refused(portal, "select count(*) from marts.usage_daily")
        with login(warehouse_url, "meterline_analyst") as analyst:  # default privileges on the new tables
            for mart in ("usage_daily", "usage_monthly", "usage_snapshot_daily", "usage_hourly"):
                count = sql.SQL("select count(*) from marts.{}").format(sql.Identifier(mart))
                assert analyst.execute(count).fetchone() == db.execute(count).fetchone() != (0,), mart
            assert refused(analyst, "select count(*) from tenant.usage_daily")
            assert refused(analyst, "select count(*) from staging.stg_events__usage_events")
        return state

    load(USAGE_EVENTS)
    dbt_run()
    a1, a2, b1 = subs[("T001", 0)], subs[("T001", 1)], subs[("T002", 0)]
    march = [date(2025, 3, d) for d in range(1, 32)]
    assert truth("T001") == {
        "daily": sorted([
            (a1, "llm.completion", march[2], 2, Decimal(150)),
            (a1, "llm.completion", march[3], 1, Decimal(25)),
            (a2, "api.request", march[2], 2, Decimal(0)),
        ]),
        "monthly": sorted([(a1, "llm.completion", march[0], 3), (a2, "api.request", march[0], 2)]),
        "quota": [
            ("api_requests", march[2], Decimal(2), None, None),
            ("api_requests", march[3], Decimal(2), None, None),
            ("api_requests", march[4], Decimal(2), None, None),
            ("llm_tokens", march[2], Decimal(150), Decimal(1000), Decimal("0.15")),
            ("llm_tokens", march[3], Decimal(175), Decimal(1000), Decimal("0.175")),
            ("llm_tokens", march[4], Decimal(175), Decimal(1000), Decimal("0.175")),
        ],
    }  # fmt: skip
    assert truth("T002") == {
        "daily": [(b1, "llm.completion", march[4], 1, Decimal(1000))],
        "monthly": [(b1, "llm.completion", march[0], 1)],
        "quota": [("llm_tokens", march[4], Decimal(1000), None, None)],
    }
    first = check(expect_t2_daily=1)
    # dbt built staging.stg_events__usage_events, which carries the events' properties: not the analyst's.
    assert db.execute(
        "select array_agg(a.attrelid::regclass::text order by a.attrelid::regclass::text),"
        " bool_or(has_column_privilege('meterline_analyst', a.attrelid, a.attnum, 'select')) from pg_attribute a"
        " where a.attname = 'properties' and not a.attisdropped and a.attrelid in"
        " (select oid from pg_class where relnamespace::regnamespace::text in ('raw', 'staging', 'marts'))"
    ).fetchone() == (["raw.events", "staging.stg_events__usage_events"], False)

    # Late events arrive; dbt rebuilds the marts: new tables (new oids), same protection, same grants.
    load([("T002", 0, "llm.completion", "2025-03-06T08:00:00Z", 10)])
    dbt_run()
    second = check(expect_t2_daily=2)
    for mart in ("usage_daily", "usage_monthly", "usage_snapshot_daily"):
        assert second[mart][0] != first[mart][0], f"{mart} was not rebuilt"
