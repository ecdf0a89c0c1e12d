"""The emitter: issue the drafts of a period that passed the gate, exactly once each.

Each invoice is issued in its own transaction: lock the draft, skip it if the subscription
already has an invoice for the period, take the next gap-free number, copy header and lines into
`billing`, apply the tenant's manual credits, write the JSON and PDF to the outbox, audit, and
commit. Documents are written before the commit, so a committed invoice always has them; a crash
before the commit leaves no row and gives the number back, and the next run removes documents no
committed invoice owns and re-renders any an issued invoice lacks (under an exclusive period lock
that in-flight issues hold shared, so a sweep never races an issue).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from meterline import audit, warehouse
from meterline.invoicing import documents
from meterline.invoicing.documents import Document, Line
from meterline.invoicing.gate import GateFailed, header_columns, latest_decision
from meterline.invoicing.money import round_money
from meterline.invoicing.numbering import next_number
from meterline.invoicing.period import Period
from meterline.landing import Zone, outbox

log = logging.getLogger(__name__)


class DraftInvalid(RuntimeError):
    """A draft that cannot become an invoice as it stands (missing price or tax)."""


@dataclass
class EmitResult:
    period: Period
    gate_run_id: str
    issued: list[str] = field(default_factory=list)  # invoice numbers issued by this run
    already_issued: list[str] = field(default_factory=list)  # draft ids issued earlier
    blocked: dict[str, list[str]] = field(default_factory=dict)  # draft id -> reasons
    documents: list[str] = field(default_factory=list)  # URIs written
    repaired: list[str] = field(default_factory=list)  # documents re-rendered for issued invoices
    removed: list[str] = field(default_factory=list)  # orphan documents of rolled-back issues

    def summary(self) -> str:
        return (
            f"emit {self.period} (gate {self.gate_run_id}): issued {len(self.issued)}, already issued"
            f" {len(self.already_issued)}, blocked {len(self.blocked)}, documents repaired {len(self.repaired)},"
            f" orphans removed {len(self.removed)}"
        )


def period_lock_key(period: Period) -> str:
    return f"meterline.emit:{period.label}"


def _lock_period_shared(conn: psycopg.Connection, period: Period) -> None:
    conn.execute("select pg_advisory_xact_lock_shared(hashtext(%s))", [period_lock_key(period)])


def _lock_draft(conn: psycopg.Connection, draft_id: str) -> None:
    conn.execute("select pg_advisory_xact_lock(hashtext('meterline.draft'), hashtext(%s))", [draft_id])


def _tenant(conn: psycopg.Connection, tenant_id: str) -> dict[str, Any]:
    row = conn.execute(
        "select name, country, billing_email from raw.catalog_tenants where tenant_id = %s", [tenant_id]
    ).fetchone()
    if row is None:
        raise DraftInvalid(f"tenant {tenant_id} is not in raw.catalog_tenants")
    return {"name": row[0], "country": row[1], "billing_email": row[2]}


def _tax_rate(conn: psycopg.Connection, country: str, on: Any) -> Decimal | None:
    row = conn.execute(
        "select rate from raw.catalog_tax_rates where upper(country) = upper(%s) and valid_from <= %s"
        " and (valid_to is null or valid_to > %s) order by valid_from desc limit 1",
        [country, on, on],
    ).fetchone()
    return None if row is None else Decimal(row[0])


def document_from_rows(invoice: dict[str, Any], lines: list[dict[str, Any]], references: dict[str, str]) -> Document:
    return Document(
        kind="invoice",
        number=invoice["invoice_number"],
        document_id=str(invoice["invoice_id"]),
        tenant_id=invoice["tenant_id"],
        tenant_name=invoice["tenant_name"],
        billing_email=invoice["billing_email"],
        subscription_id=str(invoice["subscription_id"]),
        period_start=invoice["period_start"],
        period_end=invoice["period_end"],
        currency=invoice["currency"],
        subtotal=invoice["subtotal"],
        credits=invoice["credits"],
        tax=invoice["tax"],
        total=invoice["total"],
        issued_at=invoice["issued_at"],
        content_hash=invoice["content_hash"],
        lines=tuple(
            Line(
                line_no=line["line_no"],
                kind=line["kind"],
                description=line["description"],
                amount=line["amount"],
                metric_code=line["metric_code"],
                quantity=line["quantity"],
                unit_price=line["unit_price"],
            )
            for line in lines
        ),
        references=references,
    )


def write_documents(zone: Zone, doc: Document) -> list[str]:
    return [
        zone.write_bytes(doc.json_path, documents.render_json(doc)),
        zone.write_bytes(doc.pdf_path, documents.render_pdf(doc)),
    ]


def _references(conn: psycopg.Connection, replaces: Any) -> dict[str, str]:
    if replaces is None:
        return {}
    (number,) = conn.execute("select invoice_number from billing.invoices where invoice_id = %s", [replaces]).fetchone()
    return {"replaces_invoice": number}


def issue_draft(
    conn: psycopg.Connection,
    draft_id: str,
    zone: Zone,
    *,
    actor: str,
    issued_at: datetime | None = None,
    replaces_invoice_id: Any = None,
    allow_after_void: bool = False,
    columns: set[str] | None = None,
) -> tuple[str, list[str]] | None:
    """Issue one draft inside the caller's transaction; None when it was issued already.

    Returns the invoice number and the document URIs. Raises DraftInvalid when the draft has a
    missing price or tax rate (it must never become an invoice with a zero instead).
    """
    _lock_draft(conn, draft_id)
    cur = conn.cursor(row_factory=dict_row)
    # Once a month is issued, invoice_header shows the issued figures and keeps dbt's own
    # recomputation in draft_*: a regeneration must take the recomputation.
    figures = [
        sql.SQL("{} as {}").format(
            sql.Identifier(f"draft_{name}" if f"draft_{name}" in columns else name), sql.Identifier(name)
        )
        for columns in [columns if columns is not None else header_columns(conn)]
        for name in ("subtotal", "credits", "tax", "total")
    ]
    header = cur.execute(
        sql.SQL(
            "select invoice_id, tenant_id, subscription_id, period_start, period_end, currency, {}"
            " from marts.invoice_header where invoice_id = %s"
        ).format(sql.SQL(", ").join(figures)),
        [draft_id],
    ).fetchone()
    if header is None:
        raise DraftInvalid(f"draft {draft_id} is not in marts.invoice_header")
    existing = conn.execute(
        "select status from billing.invoices where subscription_id = %s and period_start = %s",
        [header["subscription_id"], header["period_start"]],
    ).fetchall()
    if any(status != "void" for (status,) in existing) or (existing and not allow_after_void):
        return None  # issued already (a void one is regenerated only by an operator's correction)
    lines = cur.execute(
        "select line_no, kind, metric_code, description, quantity, unit_price, amount"
        " from marts.invoice_draft_lines where invoice_id = %s order by line_no",
        [draft_id],
    ).fetchall()
    problems = [
        f"line {line['line_no']} ({line['description']}) has no amount" for line in lines if line["amount"] is None
    ]
    problems += [f"{name} missing" for name in ("subtotal", "credits", "tax", "total") if header[name] is None]
    if "has_pricing_error" in (columns if columns is not None else header_columns(conn)):
        # dbt may have been rebuilt since the gate ran: its own verdict on the draft still holds.
        flagged = conn.execute(
            "select pricing_errors from marts.invoice_header where invoice_id = %s and has_pricing_error", [draft_id]
        ).fetchone()
        if flagged:
            problems.append(f"pricing configuration error: {flagged[0]}")
    if problems:
        raise DraftInvalid(f"draft {draft_id}: {'; '.join(problems)}")
    tenant = _tenant(conn, header["tenant_id"])
    currency = header["currency"]
    subtotal, credits, tax = header["subtotal"], header["credits"], header["tax"]
    invoice_id = uuid.uuid4()
    applications: list[tuple[Any, Decimal, str]] = []

    # Manual credits: reduce the pre-tax amount, never below zero; the rest carries forward.
    grants = conn.execute(
        "select g.grant_id, g.reason, g.amount - coalesce(sum(a.amount), 0) as remaining"
        " from billing.credit_grants g left join billing.credit_applications a using (grant_id)"
        " where g.tenant_id = %s and g.currency = %s group by g.grant_id order by g.created_at, g.grant_id",
        [header["tenant_id"], currency],
    ).fetchall()
    room = subtotal - credits
    for grant_id, reason, remaining in grants:
        use = min(remaining, room)
        if use > 0:
            applications.append((grant_id, use, reason))
            room -= use
    extra_lines = []
    if applications:
        # The rate valid on the period's last day, as dbt's invoice_header prices tax.
        rate = _tax_rate(conn, tenant["country"], header["period_end"] - timedelta(days=1))
        if rate is None:
            raise DraftInvalid(f"draft {draft_id}: no tax rate for {tenant['country']} to recompute tax after credits")
        applied = sum((use for _, use, _ in applications), Decimal(0))
        credits = credits + applied
        tax = round_money((subtotal - credits) * rate, currency)
        next_line = max((line["line_no"] for line in lines), default=0) + 1
        for offset, (_grant, use, reason) in enumerate(applications):
            extra_lines.append(
                {
                    "line_no": next_line + offset,
                    "kind": "credit",
                    "metric_code": None,
                    "description": f"Manual credit: {reason}",
                    "quantity": None,
                    "unit_price": None,
                    "amount": -use,
                }
            )
    total = subtotal - credits + tax
    issued_at = issued_at or datetime.now(UTC)
    number = next_number(conn, "INV", issued_at.year)
    invoice = {
        "invoice_id": invoice_id,
        "invoice_number": number,
        "tenant_id": header["tenant_id"],
        "tenant_name": tenant["name"],
        "billing_email": tenant["billing_email"],
        "subscription_id": header["subscription_id"],
        "period_start": header["period_start"],
        "period_end": header["period_end"],
        "currency": currency,
        "subtotal": subtotal,
        "credits": credits,
        "tax": tax,
        "total": total,
        "issued_at": issued_at,
    }
    all_lines = [dict(line) for line in lines] + extra_lines
    references = _references(conn, replaces_invoice_id)
    conn.execute(
        "insert into billing.invoices (invoice_id, invoice_number, draft_id, tenant_id, tenant_name, billing_email,"
        " subscription_id, period_start, period_end, currency, subtotal, credits, tax, total, status, issued_at,"
        " replaces_invoice_id)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'issued', %s, %s)",
        [
            invoice_id, number, draft_id, header["tenant_id"], tenant["name"], tenant["billing_email"],
            header["subscription_id"], header["period_start"], header["period_end"], currency, subtotal, credits,
            tax, total, issued_at, replaces_invoice_id,
        ],
    )  # fmt: skip
    with conn.cursor() as lines_cur:
        lines_cur.executemany(
            "insert into billing.invoice_line_items (invoice_id, line_no, kind, metric_code, description, quantity,"
            " unit_price, amount) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (invoice_id, line["line_no"], line["kind"], line["metric_code"], line["description"],
                 line["quantity"], line["unit_price"], line["amount"])
                for line in all_lines
            ],
        )  # fmt: skip
    for grant_id, use, _ in applications:
        conn.execute(
            "insert into billing.credit_applications (grant_id, invoice_id, amount) values (%s, %s, %s)",
            [grant_id, invoice_id, use],
        )
        audit.record(
            conn,
            actor=actor,
            action="credit.applied",
            resource=f"invoice:{number}",
            metadata={
                "grant_id": str(grant_id),
                "amount": str(use),
                "currency": currency,
                "tenant_id": header["tenant_id"],
            },
        )
    # The hash of the stored rows, written once by this (the issuing) transaction; the documents
    # print it, and the commit is refused if any row changes after this.
    (invoice["content_hash"],) = conn.execute("select billing.seal_invoice(%s)", [invoice_id]).fetchone()
    doc = document_from_rows(invoice, all_lines, references)
    uris = write_documents(zone, doc)
    audit.record(
        conn,
        actor=actor,
        action="invoice.issued",
        resource=f"invoice:{number}",
        metadata={
            "invoice_id": str(invoice_id),
            "draft_id": draft_id,
            "period": header["period_start"].strftime("%Y-%m"),
            "total": str(total),
            "currency": currency,
            "content_hash": doc.content_hash,
            "documents": uris,
            **({"replaces_invoice_id": str(replaces_invoice_id)} if replaces_invoice_id else {}),
        },
    )
    return number, uris


def load_document(conn: psycopg.Connection, invoice_number: str) -> Document:
    """An issued invoice as a Document, rendered from the warehouse rows."""
    cur = conn.cursor(row_factory=dict_row)
    invoice = cur.execute("select * from billing.invoices where invoice_number = %s", [invoice_number]).fetchone()
    if invoice is None:
        raise LookupError(f"no issued invoice {invoice_number}")
    lines = cur.execute(
        "select * from billing.invoice_line_items where invoice_id = %s order by line_no", [invoice["invoice_id"]]
    ).fetchall()
    return document_from_rows(invoice, lines, _references(conn, invoice["replaces_invoice_id"]))


def sweep_documents(conninfo: str, period: Period, zone: Zone) -> tuple[list[str], list[str]]:
    """Remove invoice documents no committed invoice owns; re-render those an invoice lacks.

    Holds the period's lock exclusively, so no issue is in flight while it looks.
    """
    removed, repaired = [], []
    folder = f"invoices/{period.label}"
    with warehouse.transaction(conninfo) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [period_lock_key(period)])
        numbers = {
            n
            for (n,) in conn.execute(
                "select invoice_number from billing.invoices where period_start = %s", [period.start]
            ).fetchall()
        }
        present = {f.path for f in zone.list(folder)}
        for path in sorted(present):
            stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if stem not in numbers and path.endswith((".json", ".pdf")):
                zone.fs.delete_file(f"{zone.root}/{path}")
                removed.append(zone.uri(path))
        for number in sorted(numbers):
            if not {f"{folder}/{number}.json", f"{folder}/{number}.pdf"} <= present:
                repaired += write_documents(zone, load_document(conn, number))
    return removed, repaired


def emit(
    conninfo: str,
    period: str | Period,
    outbox_url: str | None = None,
    *,
    actor: str = "emitter",
    issued_at: datetime | None = None,
    before_commit: Callable[[str, str], None] | None = None,
) -> EmitResult:
    """Issue every draft of `period` the latest gate run lets through; idempotent.

    Raises GateFailed when the period has no gate run or its latest run blocked it.
    `before_commit(draft_id, invoice_number)` runs inside each invoice's transaction after its
    documents are written (the place a crash hurts most; tests use it to crash there).
    """
    period = Period.parse(period)
    zone = outbox(outbox_url)
    with warehouse.connect(conninfo, autocommit=True) as conn:
        decision = latest_decision(conn, period)
        if decision is None:
            raise GateFailed(f"no gate run for {period}: run the gate first (meterline gate --period {period})")
        if not decision.passed:
            raise GateFailed("the latest gate run blocks the period; nothing emitted\n" + decision.summary())
        drafts = [
            d
            for (d,) in conn.execute(
                "select invoice_id from marts.invoice_header where period_start = %s order by invoice_id",
                [period.start],
            ).fetchall()
        ]
    result = EmitResult(period, decision.run_id)
    result.removed, result.repaired = sweep_documents(conninfo, period, zone)
    blocked = decision.blocked_invoices
    # One connection, one transaction per invoice: the advisory locks are transaction-scoped.
    with warehouse.connect(conninfo, autocommit=True) as conn:
        columns = header_columns(conn)
        for draft_id in drafts:
            if draft_id in blocked:
                result.blocked[draft_id] = blocked[draft_id]
                continue
            try:
                with conn.transaction():
                    _lock_period_shared(conn, period)
                    issued = issue_draft(conn, draft_id, zone, actor=actor, issued_at=issued_at, columns=columns)
                    if issued is not None and before_commit:
                        before_commit(draft_id, issued[0])
            except DraftInvalid as exc:
                result.blocked[draft_id] = [str(exc)]
                log.error("not issued: %s", exc)
                continue
            if issued is None:
                result.already_issued.append(draft_id)
            else:
                result.issued.append(issued[0])
                result.documents += issued[1]
    log.info("%s", result.summary())
    return result
