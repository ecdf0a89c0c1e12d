"""The documents a tenant receives: one JSON and one PDF per invoice or credit note.

Both are rendered from the same `Document`, which is built from the issued rows; so a document
lost from the outbox can be rendered again, byte for byte the same JSON, from the warehouse.
Both carry the document's content hash as the warehouse stores it: defined once, in SQL
(`billing.invoice_content_hash` / `billing.credit_note_content_hash`, 090_billing_owner.sql),
written when the document is issued and checked by the gate and a dbt test.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from meterline.money import format_money


@dataclass(frozen=True)
class Line:
    line_no: int
    kind: str
    description: str
    amount: Decimal
    metric_code: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class Document:
    kind: str  # invoice | credit_note
    number: str
    document_id: str
    tenant_id: str
    tenant_name: str
    billing_email: str | None
    subscription_id: str
    period_start: date
    period_end: date
    currency: str
    subtotal: Decimal
    credits: Decimal
    tax: Decimal
    total: Decimal
    issued_at: datetime
    lines: tuple[Line, ...]
    content_hash: str  # billing.invoice_content_hash / credit_note_content_hash of the stored rows
    references: dict[str, str] = field(default_factory=dict)  # e.g. credited invoice, replaced invoice

    @property
    def folder(self) -> str:
        base = "invoices" if self.kind == "invoice" else "credit_notes"
        return f"{base}/{self.period_start.strftime('%Y-%m')}"

    @property
    def json_path(self) -> str:
        return f"{self.folder}/{self.number}.json"

    @property
    def pdf_path(self) -> str:
        return f"{self.folder}/{self.number}.pdf"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def content(doc: Document) -> dict[str, Any]:
    return _plain(asdict(doc))


def render_json(doc: Document) -> bytes:
    return (json.dumps(content(doc), sort_keys=True, indent=2) + "\n").encode()


def render_pdf(doc: Document) -> bytes:
    """A one-page A4 document (more pages when the lines need them) with reportlab."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    title = "Invoice" if doc.kind == "invoice" else "Credit note"
    buffer = io.BytesIO()
    pdf = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"{title} {doc.number}",
        author="meterline",
        invariant=1,  # same bytes for the same content: no creation date or random id
        leftMargin=18 * mm,
        rightMargin=18 * mm,
    )
    story: list = [Paragraph(f"{title} {doc.number}", styles["Title"])]
    facts = [
        ("Tenant", f"{doc.tenant_name} ({doc.tenant_id})"),
        ("Billing email", doc.billing_email or "-"),
        ("Subscription", doc.subscription_id),
        ("Period", f"{doc.period_start.isoformat()} to {doc.period_end.isoformat()} (exclusive)"),
        ("Issued", doc.issued_at.strftime("%Y-%m-%d %H:%M UTC")),
        ("Currency", doc.currency),
    ]
    facts += [(label.replace("_", " ").capitalize(), value) for label, value in sorted(doc.references.items())]
    story.append(Table(facts, colWidths=[35 * mm, 130 * mm], hAlign="LEFT"))
    story.append(Spacer(1, 6 * mm))

    rows = [["#", "Description", "Quantity", "Unit price", "Amount"]]
    for line in doc.lines:
        rows.append(
            [
                str(line.line_no),
                Paragraph(line.description, styles["BodyText"]),
                "" if line.quantity is None else f"{line.quantity.normalize():f}",
                "" if line.unit_price is None else f"{line.unit_price.normalize():f}",
                format_money(line.amount, doc.currency),
            ]
        )
    lines = Table(rows, colWidths=[10 * mm, 80 * mm, 25 * mm, 25 * mm, 34 * mm], repeatRows=1)
    lines.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
            ]
        )
    )
    story += [lines, Spacer(1, 6 * mm)]
    totals = [
        ("Subtotal", format_money(doc.subtotal, doc.currency)),
        ("Credits", format_money(-doc.credits if doc.credits else doc.credits, doc.currency)),
        ("Tax", format_money(doc.tax, doc.currency)),
        ("Total", format_money(doc.total, doc.currency)),
    ]
    summary = Table(totals, colWidths=[40 * mm, 40 * mm], hAlign="RIGHT")
    summary.setStyle(
        TableStyle(
            [
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.black),
            ]
        )
    )
    story += [summary, Spacer(1, 6 * mm), Paragraph(f"Content hash: {doc.content_hash}", styles["Code"])]
    pdf.build(story)
    return buffer.getvalue()
