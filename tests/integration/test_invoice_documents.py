"""The invoice and credit-note documents as a customer reads them, rendered from a real close.

The handwritten month (tests/handwritten_month.py) plus catalog rows written here that no
generator makes: a tenant with a long name and a long multi-line address (to provoke wrapping),
taxed at a 0 % rate (reverse charge), whose subscription starts on the 16th; and a second
subscription of it on a plan with no fee and no usage (a zero invoice). The rendered PDFs are
read back with poppler: every word box on the page is disjoint from every other (no overprint),
and every element an invoice needs is there.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from handwritten_month import FIXTURE, PERIOD, pass_gate

from meterline import close
from meterline.catalog.load import load_catalog
from meterline.cli import main
from meterline.invoicing import corrections, documents
from meterline.invoicing.emit import emit, load_document
from meterline.reporting import close_report

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils missing: `make install` installs it"),
]

ISSUED_AT = datetime(2025, 4, 2, 9, 30, tzinfo=UTC)
LONG_NAME = "Überlange Gesellschaft für Cloud-Infrastruktur, Datenverarbeitung und Abrechnungsdienste mbH & Co. KG"
LONG_ADDRESS = (
    "Sehr lange Straße mit einem außerordentlich ausführlichen Namen 123, Hinterhaus, 4. Obergeschoss links\n"
    "1010 Wien\nÖsterreich"
)
MID_MONTH = "00000000-0000-4000-8000-000000000004"  # t-0004 from 2025-03-16: 16 of 31 days
ZERO = "00000000-0000-4000-8000-000000000005"  # t-0004, no fee, no usage
SELLER = {
    "INVOICE_SELLER_NAME": "Meterline Cloud GmbH",
    "INVOICE_SELLER_ADDRESS": r"Torstraße 1\n10119 Berlin\nGermany",
    "INVOICE_SELLER_VAT_ID": "DE123456789",
    "INVOICE_PAYMENT_TERMS_DAYS": "14",
}


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def _catalog(root: Path) -> Path:
    """The handwritten catalog plus t-0004's rows (new keys: first versions, valid for March)."""
    shutil.copytree(FIXTURE / "catalog", root / "catalog")
    catalog = root / "catalog"
    quoted = LONG_ADDRESS.replace('"', '""')
    _append(catalog / "tenants.csv", f't-0004,"{LONG_NAME}",AT,EUR,,"{quoted}",ATU12345678\n')
    _append(catalog / "tax_rates.csv", "AT,0.00,2024-01-01,\n")
    _append(catalog / "plans.csv", "free-eur,Free,EUR,0,0\n")
    _append(
        catalog / "subscriptions.csv",
        f"{MID_MONTH},t-0004,team-eur,2025-03-16T00:00:00Z,\n{ZERO},t-0004,free-eur,2025-03-01T00:00:00Z,\n",
    )
    return root


@pytest.fixture
def closed(month_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in SELLER.items():
        monkeypatch.setenv(name, value)
    load_catalog(month_url, str(_catalog(tmp_path / "landing")))
    close.build(month_url, PERIOD)
    pass_gate(month_url)
    return month_url


def word_boxes(pdf: Path) -> list[tuple[str, float, float, float, float]]:
    """(word, xMin, yMin, xMax, yMax) of every word on every page, as poppler lays them out."""
    xhtml = subprocess.run(
        ["pdftotext", "-bbox-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    words = []
    for page_no, page in enumerate(e for e in ET.fromstring(xhtml).iter() if e.tag.endswith("page")):
        for word in (e for e in page.iter() if e.tag.endswith("word")):
            box = [float(word.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")]
            words.append((word.text or "", box[0], box[1] + 10_000 * page_no, box[2], box[3] + 10_000 * page_no))
    return words


def assert_no_overlap(pdf: Path) -> list[tuple[str, float, float, float, float]]:
    words = word_boxes(pdf)
    assert len(words) > 40, words
    tolerance = 0.3  # points: boxes that only touch do not overprint
    overlapping = [
        (a[0], b[0])
        for a, b in itertools.combinations(words, 2)
        if min(a[3], b[3]) - max(a[1], b[1]) > tolerance and min(a[4], b[4]) - max(a[2], b[2]) > tolerance
    ]
    assert overlapping == [], f"overprinted words in {pdf.name}: {overlapping[:10]}"
    return words


def text_of(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout


def flowing(pdf: Path) -> str:
    """The page's text in reading order, whitespace collapsed: a phrase wrapped in a cell reads whole."""
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    return " ".join(text.split())


def test_documents_carry_what_an_invoice_needs_and_never_overprint(closed, month_db, tmp_path):
    outbox = tmp_path / "outbox"
    result = emit(closed, PERIOD, str(outbox), issued_at=ISSUED_AT)

    # The zero invoice is not issued by default, and the close accounts for it.
    assert result.issued == [f"INV-2025-00000{n}" for n in range(1, 5)]
    assert result.skipped == {f"D-202503-{ZERO}": "zero invoice: no fee and no usage (issue_zero_invoices is off)"}
    assert result.failed == {} and result.blocked == {}
    assert month_db.execute(
        "select status, count(*) from marts.invoice_header where period_start = '2025-03-01' group by 1 order by 1"
    ).fetchall() == [("issued", 4), ("skipped", 1)]

    figures = close_report.gather(month_db, date(2025, 3, 1))
    assert figures.invoices_by_status == {"issued": 4, "skipped": 1}
    assert "1 zero invoices skipped" in close_report.render(figures)

    # t-0004's invoice: 200.00 x 16/31 = 103.23 EUR, tax 0 % (AT), due 14 days after issue.
    row = month_db.execute(
        "select subtotal, tax, total, country, tax_rate, service_start, service_end, due_date, buyer_vat_id,"
        " seller_name from billing.invoices where invoice_number = 'INV-2025-000004'"
    ).fetchone()
    assert row == (
        Decimal("103.23"), Decimal("0.00"), Decimal("103.23"), "AT", Decimal("0.00"),
        datetime(2025, 3, 16).date(), datetime(2025, 4, 1).date(), datetime(2025, 4, 16).date(), "ATU12345678",
        "Meterline Cloud GmbH",
    )  # fmt: skip

    folder = outbox / "invoices/2025-03"
    pdf = folder / "INV-2025-000004.pdf"
    words = assert_no_overlap(pdf)
    text = text_of(pdf)
    for expected in (
        "Meterline Cloud GmbH", "Torstraße 1", "10119 Berlin", "VAT id DE123456789",  # seller
        "1010 Wien", "Österreich", "VAT id ATU12345678", "Country AT",  # buyer
        "Issue date", "2 Apr 2025", "Due date", "16 Apr 2025",
        "Service period 16 Mar 2025 to 31 Mar 2025",
        "Team base fee, 16 of 31 days",
        "Tax 0 % (AT)", "Reverse charge", "Total due", "103.23 EUR",
    ):  # fmt: skip
        assert expected in text, f"{expected!r} not on {pdf.name}:\n{text}"
    # The long name and address wrap onto several lines of the buyer block.
    name_lines = {round(w[2]) for w in words if w[0] in LONG_NAME.split()}
    assert len(name_lines) >= 2, "the long tenant name did not wrap"
    assert {w[0] for w in words} >= set(LONG_NAME.split()) | {"Obergeschoss", "links"}
    # The prorated base fee reads 1 x its amount, not a 20-decimal unit price.
    assert "0.8419354" not in text and "6.451612903" not in text

    # JPY without decimals, quantities with thousands separators in the metric's unit, a
    # non-zero rate without the reverse-charge note.
    jpy = text_of(folder / "INV-2025-000003.pdf")
    assert "6,857 JPY" in jpy and "623 JPY" in jpy and "1,234 ms" in jpy and "Reverse charge" not in jpy
    assert "Tax 10 % (JP)" in jpy and "6857.00" not in jpy and "6,857.00" not in jpy
    usd = text_of(folder / "INV-2025-000001.pdf")
    usd_flow = flowing(folder / "INV-2025-000001.pdf")  # the description wraps in its column
    assert "chat_tokens (per_unit, plan team-usd): 1,500,000 tokens" in usd_flow
    assert usd_flow.count("1,500,000 tokens") == 2  # in the description and the quantity column
    assert "0.00002" in usd and "143.00 USD" in usd
    for number in ("INV-2025-000001", "INV-2025-000002", "INV-2025-000003"):
        assert_no_overlap(folder / f"{number}.pdf")

    # Reproducible: rendered again from the warehouse, and twice, the same bytes.
    for number in ("INV-2025-000003", "INV-2025-000004"):
        again = documents.render_pdf(load_document(month_db, number))
        assert again == documents.render_pdf(load_document(month_db, number))
        assert again == (folder / f"{number}.pdf").read_bytes()

    # A credit note to the same buyer: parties and tax as on the invoice, no overprint, and the
    # operator's reason stays off it.
    corrections.issue_credit_note(
        closed, "INV-2025-000004", reason="SLA breach internal ticket 4711", actor="ops:carol",
        amount=Decimal("50"), outbox_url=str(outbox), issued_at=ISSUED_AT,
    )  # fmt: skip
    note = outbox / "credit_notes/2025-03/CN-2025-000001.pdf"
    assert_no_overlap(note)
    note_text = text_of(note)
    for expected in (
        "Credit note CN-2025-000001", "Credited invoice", "INV-2025-000004", "Meterline Cloud GmbH",
        "VAT id ATU12345678", "1010 Wien", "Reverse charge", "Tax 0 % (AT)", "-50.00 EUR", "Total credited",
    ):  # fmt: skip
        assert expected in note_text, f"{expected!r} not on the credit note:\n{note_text}"
    assert "SLA breach" not in note_text and "4711" not in note_text

    # The browser preview is the same page, from the JSON document.
    html = tmp_path / "preview.html"
    assert main(["invoice", "preview", str(folder / "INV-2025-000004.json"), "--output", str(html)]) == 0
    assert html.read_text() == documents.render_html(load_document(month_db, "INV-2025-000004"))


def test_zero_invoices_are_issued_when_configured(month_url, month_db, tmp_path, monkeypatch):
    monkeypatch.setenv("ISSUE_ZERO_INVOICES", "true")
    load_catalog(month_url, str(_catalog(tmp_path / "landing")))
    close.build(month_url, PERIOD)
    pass_gate(month_url)
    result = emit(month_url, PERIOD, str(tmp_path / "outbox"), issued_at=ISSUED_AT)
    assert result.skipped == {} and len(result.issued) == 5
    assert month_db.execute(
        "select invoice_number, subtotal, tax, total, (select count(*) from billing.invoice_line_items l"
        " where l.invoice_id = i.invoice_id) from billing.invoices i where subscription_id = %s",
        [ZERO],
    ).fetchone() == ("INV-2025-000005", Decimal("0"), Decimal("0.00"), Decimal("0.00"), 0)
    assert_no_overlap(tmp_path / "outbox/invoices/2025-03/INV-2025-000005.pdf")


def test_catalog_without_the_optional_address_columns_still_loads(warehouse_url, tmp_path):
    root = tmp_path / "landing"
    shutil.copytree(FIXTURE / "catalog", root / "catalog")
    (root / "catalog/tenants.csv").write_text(
        "tenant_id,name,country,currency,billing_email\nt-0001,Acme Corp,US,USD,\n"
        "t-0002,Beta GmbH,DE,EUR,\nt-0003,Kappa KK,JP,JPY,\n"
    )
    assert load_catalog(warehouse_url, str(root)).row_counts["tenants.csv"] == 3
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("select count(*) from raw.catalog_tenants where address is null").fetchone() == (3,)
