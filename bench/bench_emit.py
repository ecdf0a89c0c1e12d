"""Emission throughput and the gate's data-quality cost, next to baselines on the same data.

- emit: `meterline.invoicing.emit.emit` issuing N drafts (one transaction per invoice, gap-free
  numbers, JSON + PDF written to a local outbox, audit rows) vs the baseline: the same headers
  and lines copied into billing.* by two INSERT ... SELECT statements (no documents, no locks).
- render: building one invoice's JSON and PDF in memory (the share of emission that is
  rendering the HTML template with WeasyPrint).
- gx: importing great_expectations in a fresh interpreter (paid once per process), and one
  `run_suites` of the six GX suites on a small month after the import.

Each measure is repeated; medians are reported. Run:
    .venv/bin/python bench/bench_emit.py [--invoices 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from _timing import timed

from meterline import warehouse

DDL = """
create table marts.invoice_header (
    invoice_id text, tenant_id text, subscription_id uuid, period_start date, period_end date, currency text,
    subtotal numeric, credits numeric, tax numeric, total numeric, status text, blocked_reason text);
create table marts.invoice_draft_lines (
    invoice_id text, line_no int, kind text, metric_code text, description text, quantity numeric,
    unit_price numeric, amount numeric);
"""


ISSUED_AT = datetime(2025, 4, 2, tzinfo=UTC)


def prepare(server: str, name: str, invoices: int) -> str:
    """A database with N open drafts of 2025-03 (3 lines each) and a passing gate run."""
    warehouse.drop_database(server, name)
    url = warehouse.with_database(server, name)
    warehouse.bootstrap(url)
    with warehouse.connect(url, autocommit=True) as db:
        db.execute(DDL)
        db.execute(
            "insert into raw.catalog_tenants (tenant_id, name, country, currency, billing_email, source_file)"
            " select 't-' || lpad(n::text, 4, '0'), 'Tenant ' || n, 'US', 'USD', 'b' || n || '@example.com', 'b'"
            " from generate_series(1, %s) n",
            [invoices],
        )
        db.execute(
            "insert into marts.invoice_header select 'D-202503-' || s, 't-' || lpad(n::text, 4, '0'), s,"
            " '2025-03-01', '2025-04-01', 'USD', 150.00, 0, 15.00, 165.00, 'open', null"
            " from (select n, gen_random_uuid() as s from generate_series(1, %s) n) x",
            [invoices],
        )
        db.execute(
            "insert into marts.invoice_draft_lines select h.invoice_id, l.n, l.kind, l.metric, l.descr, l.qty,"
            " l.price, l.amount from marts.invoice_header h cross join (values"
            " (1, 'base_fee', null, 'Base fee', 1, 100.00, 100.00),"
            " (2, 'usage', 'llm_tokens', 'LLM tokens', 1000000, 0.00002, 20.00),"
            " (3, 'usage', 'api_requests', 'API requests', 30000, 0.001, 30.00)"
            ") as l(n, kind, metric, descr, qty, price, amount)"
        )
        db.execute(
            "insert into ops.invoice_gate (run_id, period_start, check_name, scope, passed)"
            " values ('bench', '2025-03-01', 'bench', 'period', true)"
        )
    return url


def clone(server: str, template: str, name: str) -> str:
    warehouse.drop_database(server, name)
    warehouse.create_database(server, name, template=template)
    return warehouse.with_database(server, name)


def baseline(url: str) -> None:
    with warehouse.transaction(url) as db:
        db.execute(
            "create temp table ids as select invoice_id as draft_id, gen_random_uuid() as id,"
            " row_number() over (order by invoice_id) as n from marts.invoice_header"
        )
        db.execute(
            "insert into billing.invoices (invoice_id, invoice_number, draft_id, tenant_id, subscription_id,"
            " period_start, period_end, currency, subtotal, credits, tax, total, status, issued_at)"
            " select ids.id, 'INV-2025-' || lpad(ids.n::text, 6, '0'), h.invoice_id, h.tenant_id, h.subscription_id,"
            " h.period_start, h.period_end, h.currency, h.subtotal, h.credits, h.tax, h.total, 'issued', now()"
            " from marts.invoice_header h join ids on ids.draft_id = h.invoice_id"
        )
        db.execute(
            "insert into billing.invoice_line_items (invoice_id, line_no, kind, metric_code, description, quantity,"
            " unit_price, amount) select ids.id, l.line_no, l.kind, l.metric_code, l.description, l.quantity,"
            " l.unit_price, l.amount from marts.invoice_draft_lines l join ids on ids.draft_id = l.invoice_id"
        )
        db.execute("select billing.seal_invoice(id) from ids")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from meterline.invoicing import documents
    from meterline.invoicing.emit import emit, load_document

    server = warehouse.url()
    template = f"bench_emit_{uuid.uuid4().hex[:6]}"
    prepare(server, template, args.invoices)
    emit_times, base_times = [], []
    try:
        for i in range(args.repeats):
            url = clone(server, template, f"{template}_b{i}")
            base_times.append(timed(lambda url=url: baseline(url)))
            warehouse.drop_database(server, f"{template}_b{i}")
            url = clone(server, template, f"{template}_e{i}")
            with tempfile.TemporaryDirectory() as outbox:
                emit_times.append(
                    timed(lambda url=url, outbox=outbox: emit(url, "2025-03", outbox, issued_at=ISSUED_AT))
                )
            if i == 0:
                with warehouse.connect(url) as db:
                    doc = load_document(db, "INV-2025-000001")
                    issued = db.execute("select count(*) from billing.invoices").fetchone()[0]
                assert issued == args.invoices
            warehouse.drop_database(server, f"{template}_e{i}")
    finally:
        warehouse.drop_database(server, template)
    render_times = [timed(lambda: (documents.render_json(doc), documents.render_pdf(doc))) for _ in range(20)]
    gx_import = [
        timed(lambda: subprocess.run([sys.executable, "-c", "import great_expectations"], check=True))
        for _ in range(args.repeats)
    ]

    med_emit, med_base = statistics.median(emit_times), statistics.median(base_times)
    med_render = statistics.median(render_times)
    print(f"invoices: {args.invoices}, repeats: {args.repeats}")
    print(f"emit: median {med_emit:.2f} s ({1000 * med_emit / args.invoices:.1f} ms/invoice)")
    print(f"baseline INSERT ... SELECT: median {med_base:.3f} s; ratio emit/baseline {med_emit / med_base:.0f}x")
    print(
        f"render JSON+PDF: median {1000 * med_render:.1f} ms/invoice"
        f" ({100 * med_render * args.invoices / med_emit:.0f} % of emit)"
    )
    print(f"great_expectations import in a fresh interpreter: median {statistics.median(gx_import):.1f} s")
    assert Decimal(doc.total) == Decimal("165.00")


if __name__ == "__main__":
    main()
