"""The emitter: issue the drafts of a period that passed the gate, exactly once each.

It computes no money: every figure is dbt's (`marts.invoice_drafts`, `marts.invoice_draft_lines`)
and is copied as it is. Each invoice is issued in its own transaction: lock the draft, skip it
if the subscription already has an invoice for the period, check the draft is still the one the
gate passed (its fingerprint), take the next gap-free number, copy header, lines and the manual
credits it uses into `billing`, render its JSON and PDF under temporary names, audit, commit; the
documents are published under the number only after the commit (`publish`).

The gate's decision covers the data it read: when the period's inputs changed since (new event
files, rejections, a CUR delivery, a catalog load, a manual credit) nothing is issued, and a draft
whose content changed is not issued, until the gate runs again.

A zero invoice (no fee and no usage) is not issued unless `issue_zero_invoices` is on: dbt
decides it (invoice_drafts.is_skipped) and the emitter obeys, counting it as skipped.

One draft that cannot be issued (a pricing error, a figure that cannot be rendered, anything
unexpected) is blocked with its reason and the others are issued; the result says so.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from meterline import audit, config, warehouse
from meterline.invoicing import documents, publish
from meterline.invoicing.documents import Document, Line
from meterline.invoicing.gate import GateFailed, changed_inputs, gate_inputs, latest_decision, watermarks
from meterline.invoicing.numbering import next_number
from meterline.landing import Zone, outbox
from meterline.period import Period

log = logging.getLogger(__name__)


class DraftInvalid(RuntimeError):
    """A draft that cannot become an invoice as it stands (missing price or tax)."""


class DraftChanged(RuntimeError):
    """The draft is not the one the gate passed: its content changed since."""


@dataclass
class Issued:
    number: str
    staged: list[publish.Staged]


@dataclass
class EmitResult:
    period: Period
    gate_run_id: str
    issued: list[str] = field(default_factory=list)  # invoice numbers issued by this run
    already_issued: list[str] = field(default_factory=list)  # draft ids issued earlier
    blocked: dict[str, list[str]] = field(default_factory=dict)  # draft id -> reasons
    skipped: dict[str, str] = field(default_factory=dict)  # draft id -> why not issued (a zero invoice)
    failed: dict[str, str] = field(default_factory=dict)  # draft id -> what went wrong issuing it
    documents: list[str] = field(default_factory=list)  # URIs written
    repaired: list[str] = field(default_factory=list)  # documents re-rendered for issued invoices
    removed: list[str] = field(default_factory=list)  # orphan documents of rolled-back issues

    @property
    def complete(self) -> bool:
        """Every draft the gate let through was issued (now or before)."""
        return not self.failed

    def summary(self) -> str:
        head = (
            f"emit {self.period} (gate {self.gate_run_id}): issued {len(self.issued)}, already issued"
            f" {len(self.already_issued)}, blocked {len(self.blocked)}, zero invoices skipped {len(self.skipped)},"
            f" failed {len(self.failed)},"
            f" documents repaired {len(self.repaired)}, orphans removed {len(self.removed)}"
        )
        return "\n".join([head, *(f"  not issued {d}: {why}" for d, why in sorted(self.failed.items()))])


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
                unit=line.get("unit"),
            )
            for line in lines
        ),
        references=references,
        seller_name=invoice.get("seller_name"),
        seller_address=invoice.get("seller_address"),
        seller_vat_id=invoice.get("seller_vat_id"),
        buyer_address=invoice.get("buyer_address"),
        buyer_vat_id=invoice.get("buyer_vat_id"),
        country=invoice.get("country"),
        tax_rate=invoice.get("tax_rate"),
        service_start=invoice.get("service_start"),
        service_end=invoice.get("service_end"),
        due_date=invoice.get("due_date"),
    )


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
    gated_hash: str | None = None,
) -> Issued | None:
    """Issue one draft inside the caller's transaction, as dbt priced it; None when the month was
    issued already. The caller publishes the staged documents after its commit.

    Raises DraftInvalid when the draft has a pricing configuration error (it must never become
    an invoice with a zero instead), DraftChanged when `gated_hash` is given and the draft's
    content is no longer what the gate passed.
    """
    _lock_draft(conn, draft_id)
    cur = conn.cursor(row_factory=dict_row)
    draft = cur.execute("select * from marts.invoice_drafts where invoice_id = %s", [draft_id]).fetchone()
    if draft is None:
        raise DraftInvalid(f"draft {draft_id} is not in marts.invoice_drafts")
    existing = conn.execute(
        "select status from billing.invoices where subscription_id = %s and period_start = %s",
        [draft["subscription_id"], draft["period_start"]],
    ).fetchall()
    if any(status != "void" for (status,) in existing) or (existing and not allow_after_void):
        return None  # issued already (a void one is regenerated only by an operator's correction)
    if gated_hash is not None and draft["content_hash"] != gated_hash:
        raise DraftChanged(f"draft {draft_id} changed since the gate passed it: re-run the gate")
    if draft["has_pricing_error"]:
        raise DraftInvalid(f"draft {draft_id}: pricing configuration error: {draft['pricing_errors']}")
    missing = [name for name in ("currency", "subtotal", "credits", "tax", "total") if draft[name] is None]
    if missing:
        raise DraftInvalid(f"draft {draft_id}: {', '.join(missing)} missing")
    lines = cur.execute(
        "select line_no, kind, metric_code, description, quantity, unit_price, amount, unit"
        " from marts.invoice_draft_lines where invoice_id = %s order by line_no",
        [draft_id],
    ).fetchall()
    tenant = _tenant(conn, draft["tenant_id"])
    invoice_id = uuid.uuid4()
    issued_at = issued_at or datetime.now(UTC)
    number = next_number(conn, "INV", issued_at.year)
    settings = config.settings()
    invoice = {
        "invoice_id": invoice_id,
        "invoice_number": number,
        "tenant_id": draft["tenant_id"],
        "tenant_name": tenant["name"],
        "billing_email": tenant["billing_email"],
        "subscription_id": draft["subscription_id"],
        "period_start": draft["period_start"],
        "period_end": draft["period_end"],
        "currency": draft["currency"],
        "subtotal": draft["subtotal"],
        "credits": draft["credits"],
        "tax": draft["tax"],
        "total": draft["total"],
        "issued_at": issued_at,
        "buyer_address": draft["buyer_address"],
        "buyer_vat_id": draft["buyer_vat_id"],
        "country": draft["country"],
        "tax_rate": draft["tax_rate"],
        "service_start": draft["service_start"],
        "service_end": draft["service_end"],
        "due_date": issued_at.astimezone(UTC).date() + timedelta(days=settings.payment_terms_days),
        "seller_name": settings.seller_name,
        "seller_address": settings.seller_address,
        "seller_vat_id": settings.seller_vat_id,
    }
    conn.execute(
        "insert into billing.invoices (invoice_id, invoice_number, draft_id, tenant_id, tenant_name, billing_email,"
        " subscription_id, period_start, period_end, currency, subtotal, credits, tax, total, status, issued_at,"
        " replaces_invoice_id, buyer_address, buyer_vat_id, country, tax_rate, service_start, service_end, due_date,"
        " seller_name, seller_address, seller_vat_id)"
        " values (%(invoice_id)s, %(invoice_number)s, %(draft_id)s, %(tenant_id)s, %(tenant_name)s,"
        " %(billing_email)s, %(subscription_id)s, %(period_start)s, %(period_end)s, %(currency)s, %(subtotal)s,"
        " %(credits)s, %(tax)s, %(total)s, 'issued', %(issued_at)s, %(replaces)s, %(buyer_address)s,"
        " %(buyer_vat_id)s, %(country)s, %(tax_rate)s, %(service_start)s, %(service_end)s, %(due_date)s,"
        " %(seller_name)s, %(seller_address)s, %(seller_vat_id)s)",
        invoice | {"draft_id": draft_id, "replaces": replaces_invoice_id},
    )
    conn.execute(
        "insert into billing.invoice_line_items (invoice_id, line_no, kind, metric_code, description, quantity,"
        " unit_price, amount, unit) select %s, line_no, kind, metric_code, description, quantity, unit_price,"
        " amount, unit from marts.invoice_draft_lines where invoice_id = %s",
        [invoice_id, draft_id],
    )
    grants = conn.execute(
        "insert into billing.credit_applications (grant_id, invoice_id, amount)"
        " select credit_grant_id, %s, credit_grant_amount from marts.invoice_draft_lines"
        " where invoice_id = %s and credit_grant_id is not null order by line_no"
        " returning grant_id, amount",
        [invoice_id, draft_id],
    ).fetchall()
    for grant_id, used in grants:
        audit.record(
            conn,
            actor=actor,
            action="credit.applied",
            resource=f"invoice:{number}",
            metadata={
                "grant_id": str(grant_id),
                "amount": str(used),
                "currency": draft["currency"],
                "tenant_id": draft["tenant_id"],
            },
        )
    # The hash of the stored rows, written once by this (the issuing) transaction; the documents
    # print it, and the commit is refused if any row changes after this.
    (invoice["content_hash"],) = conn.execute("select billing.seal_invoice(%s)", [invoice_id]).fetchone()
    doc = document_from_rows(invoice, lines, _references(conn, replaces_invoice_id))
    staged = publish.stage(zone, doc)
    audit.record(
        conn,
        actor=actor,
        action="invoice.issued",
        resource=f"invoice:{number}",
        metadata={
            "invoice_id": str(invoice_id),
            "draft_id": draft_id,
            "period": draft["period_start"].strftime("%Y-%m"),
            "total": str(draft["total"]),
            "currency": draft["currency"],
            "content_hash": doc.content_hash,
            "draft_content_hash": draft["content_hash"],
            "documents": [zone.uri(s.final) for s in staged],
            **({"replaces_invoice_id": str(replaces_invoice_id)} if replaces_invoice_id else {}),
        },
    )
    return Issued(number, staged)


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
    """Settle the outbox before issuing: temporaries of every period (publish.sweep_pending),
    then this period's invoice documents that no committed invoice owns (removed) and those an
    issued invoice lacks (rendered again from the warehouse: the same bytes).

    Holds the period's lock exclusively, so no issue of the period is in flight while it looks.
    """
    removed, repaired = [], []
    folder = f"invoices/{period.label}"
    with warehouse.transaction(conninfo) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [period_lock_key(period)])
        repaired, removed = publish.sweep_pending(conn, zone)
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
                zone.delete(path)
                removed.append(zone.uri(path))
        present = {f.path for f in zone.list(folder)}
        for number in sorted(numbers):
            if not {f"{folder}/{number}.json", f"{folder}/{number}.pdf"} <= present:
                doc = load_document(conn, number)
                repaired += [
                    zone.write_bytes(doc.json_path, documents.render_json(doc)),
                    zone.write_bytes(doc.pdf_path, documents.render_pdf(doc)),
                ]
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
    """Issue every draft of `period` the latest gate run lets through, as long as the data is
    what that gate read; idempotent.

    Raises GateFailed when the period has no gate run, its latest run blocked it, or the
    period's inputs changed since it. `before_commit(draft_id, invoice_number)` runs inside each
    invoice's transaction after its documents are staged (the place a crash hurts most; tests
    use it to crash there).
    """
    period = Period.parse(period)
    zone = outbox(outbox_url)
    with warehouse.connect(conninfo, autocommit=True) as conn:
        decision = latest_decision(conn, period)
        if decision is None:
            raise GateFailed(f"no gate run for {period}: run the gate first (meterline gate --period {period})")
        if not decision.passed:
            raise GateFailed("the latest gate run blocks the period; nothing emitted\n" + decision.summary())
        gated = gate_inputs(conn, decision.run_id)
        if gated is None:
            raise GateFailed(
                f"gate run {decision.run_id} recorded no inputs to check against: re-run the gate"
                f" (meterline gate --period {period})"
            )
        changed = changed_inputs(gated.watermarks, watermarks(conn, period))
        if changed:
            raise GateFailed(
                f"data changed since the gate at {decision.decided_at:%Y-%m-%d %H:%M} UTC ({'; '.join(changed)});"
                f" nothing emitted: rebuild and re-run the gate (meterline close --period {period})"
            )
        drafts = conn.execute(
            "select invoice_id, skip_reason from marts.invoice_drafts where period_start = %s order by invoice_id",
            [period.start],
        ).fetchall()
    result = EmitResult(period, decision.run_id)
    result.removed, result.repaired = sweep_documents(conninfo, period, zone)
    blocked = decision.blocked_invoices
    gate_time = f"{decision.decided_at:%Y-%m-%d %H:%M} UTC"
    # One connection, one transaction per invoice: the advisory locks are transaction-scoped.
    with warehouse.connect(conninfo, autocommit=True) as conn:
        for draft_id, skip_reason in drafts:
            if draft_id in blocked:
                result.blocked[draft_id] = blocked[draft_id]
                continue
            if skip_reason is not None:
                result.skipped[draft_id] = skip_reason
                continue
            if draft_id not in gated.hashes:
                result.failed[draft_id] = f"not covered by the gate at {gate_time}: re-run the gate"
                continue
            try:
                with conn.transaction():
                    _lock_period_shared(conn, period)
                    issued = issue_draft(
                        conn, draft_id, zone, actor=actor, issued_at=issued_at, gated_hash=gated.hashes[draft_id]
                    )
                    if issued is not None and before_commit:
                        before_commit(draft_id, issued.number)
            except DraftInvalid as exc:
                result.blocked[draft_id] = [str(exc)]
                log.error("not issued: %s", exc)
                continue
            except DraftChanged:
                result.failed[draft_id] = f"the draft changed since the gate at {gate_time}: re-run the gate"
                continue
            except (psycopg.OperationalError, psycopg.InterfaceError):
                raise  # the connection is gone: no later draft can be issued either
            except Exception as exc:  # one draft must never stop the others
                log.exception("could not issue %s", draft_id)
                result.failed[draft_id] = f"could not be issued ({type(exc).__name__}: {exc}); nothing of it was kept"
                continue
            if issued is None:
                result.already_issued.append(draft_id)
            else:
                result.issued.append(issued.number)
                result.documents += publish.publish(zone, issued.staged)
    log.info("%s", result.summary())
    return result
