"""The documents a tenant receives: one JSON and one PDF per invoice or credit note.

Both are rendered from the same `Document`, which is built from the issued rows; so a document
lost from the outbox can be rendered again, byte for byte the same JSON and PDF, from the
warehouse. Both carry the document's content hash as the warehouse stores it: defined once, in
SQL (`billing.invoice_content_hash` / `billing.credit_note_content_hash`, 090_billing_owner.sql
and 100_invoice_document.sql), written when the document is issued and checked by the gate and
a dbt test.

The JSON is the data; one HTML/CSS template (`templates/document.html.j2`) renders it, for the
PDF (WeasyPrint, so the layout follows the content: a long name or address wraps instead of
overprinting) and for a browser preview (`render_html`, `meterline invoice preview`). The
template formats, it computes nothing: amounts in the currency's minor units (money.format_money),
unit prices to at most 6 decimals, quantities with thousands separators in the metric's unit.
The PDF's metadata dates are the issue instant and its file identifier follows from the content
hash, so the same document gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

from meterline.money import PRICE_SCALE, format_money, minor_units


@dataclass(frozen=True)
class Line:
    line_no: int
    kind: str
    description: str
    amount: Decimal
    metric_code: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    unit: str | None = None  # the catalog metric's unit of the quantity


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
    # Parties and terms, as stored with the issued document (100_invoice_document.sql); None on
    # documents issued before they were recorded.
    seller_name: str | None = None
    seller_address: str | None = None
    seller_vat_id: str | None = None
    buyer_address: str | None = None
    buyer_vat_id: str | None = None
    country: str | None = None  # the tax country (the tenant's)
    tax_rate: Decimal | None = None  # 0.19 = 19 %
    service_start: date | None = None  # the service billed, end exclusive (like period_end)
    service_end: date | None = None
    due_date: date | None = None

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


def _amount(value: str | Decimal | None, currency: str) -> str:
    return "" if value is None else format_money(Decimal(value), currency)


def _price(value: str | Decimal | None, currency: str) -> str:
    """A unit price: at least the currency's minor units, at most PRICE_SCALE decimals."""
    if value is None:
        return ""
    price = Decimal(value).quantize(Decimal(1).scaleb(-PRICE_SCALE), rounding=ROUND_HALF_UP)
    digits = max(minor_units(currency), -price.normalize().as_tuple().exponent)
    return f"{price:,.{digits}f}"


def _quantity(value: str | Decimal | None, unit: str | None = None) -> str:
    if value is None:
        return ""
    number = f"{Decimal(value).normalize():,f}"
    return f"{number} {unit}" if unit else number


def _percent(rate: str | Decimal | None) -> str:
    return "" if rate is None else f"{(Decimal(rate) * 100).normalize():f} %"


def _day(value: str | None) -> str:
    return "" if value is None else date.fromisoformat(value[:10]).strftime("%d %b %Y").lstrip("0")


def _last_day(end: str | None) -> str:
    """The last day of a period given by its exclusive end."""
    return "" if end is None else _day((date.fromisoformat(end) - timedelta(days=1)).isoformat())


def presented_lines(data: dict[str, Any]) -> list[dict[str, str]]:
    """The lines as printed: a line priced as a whole (a prorated base fee, a true-up, a credit)
    reads 1 x its amount, its description saying how it was prorated; a metered line reads its
    quantity in the metric's unit x its unit price."""
    currency = data["currency"]
    out = []
    for line in data["lines"]:
        if line["quantity"] is None:
            quantity, price = "", ""
        elif line["kind"] in ("base_fee", "minimum_commit", "credit"):
            quantity, price = "1", _price(line["amount"], currency)
        else:
            quantity, price = _quantity(line["quantity"], line.get("unit")), _price(line["unit_price"], currency)
        out.append(
            {
                "description": line["description"],
                "quantity": quantity,
                "unit_price": price,
                "amount": _amount(line["amount"], currency),
            }
        )
    return out


@cache
def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("meterline.invoicing"), autoescape=select_autoescape(), undefined=StrictUndefined
    )
    env.filters.update(amount=_amount, percent=_percent, day=_day, last_day=_last_day)
    return env


def render_html(doc: Document | dict[str, Any]) -> str:
    """The document as one HTML page (the PDF's source and the browser preview), from its JSON
    content: a `Document` or the dict its JSON file holds."""
    data = content(doc) if isinstance(doc, Document) else doc
    tax_rate = None if data.get("tax_rate") is None else Decimal(data["tax_rate"])
    credits = Decimal(data["credits"])
    return (
        _environment()
        .get_template("document.html.j2")
        .render(
            d=data,
            title="Invoice" if data["kind"] == "invoice" else "Credit note",
            lines=presented_lines(data),
            reverse_charge=tax_rate == 0,
            credits=_amount(-credits if credits else credits, data["currency"]),
        )
    )


def render_pdf(doc: Document) -> bytes:
    """The HTML page as an A4 PDF (more pages when the lines need them), by WeasyPrint: the same
    bytes for the same document (dates from the issue, identifier from the content hash)."""
    from weasyprint import HTML

    return HTML(string=render_html(doc)).write_pdf(pdf_identifier=doc.content_hash[:32].encode())
