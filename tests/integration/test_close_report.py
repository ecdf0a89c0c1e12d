"""The close report renders in a real browser (headless Chromium): no console errors, every
chart drawn with data, and the screenshot shows them."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.reporting.close_report import CloseFigures, render

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make install adds it as root)")
CHARTS = ("daily_usage", "cost_by_service", "allocated_vs_quarantined", "margin_by_tenant")


def figures() -> CloseFigures:
    days = [date(2026, 10, d) for d in range(1, 32)]
    return CloseFigures(
        period=date(2026, 10, 1),
        revenue={"EUR": Decimal("1520.40"), "USD": Decimal("98211.07")},
        raw_cost=Decimal("41000.12"),
        allocated_cost=Decimal("39000.12"),
        quarantined_cost=Decimal("2000.00"),
        gross_margin_usd=Decimal("59211.35"),
        invoices_by_status={"issued": 22, "blocked": 2},
        recon=[
            {"service": "AmazonEC2", "currency": "USD", "raw_cost": Decimal("30000"), "tenant_cost": Decimal("29000"),
             "quarantined_cost": Decimal("1000"), "allocated_cost": Decimal("30000"), "variance": Decimal("0"),
             "variance_pct": Decimal("0"), "status": "ok"},
            {"service": "AmazonS3", "currency": "USD", "raw_cost": Decimal("11000.12"), "tenant_cost": Decimal("9880"),
             "quarantined_cost": Decimal("1000"), "allocated_cost": Decimal("10880"), "variance": Decimal("120.12"),
             "variance_pct": Decimal("1.092"), "status": "failed"},
        ],
        gate=[{"check_name": "pricing_configuration", "scope": "invoice", "invoice_id": "D-202610-x",
               "passed": False, "overridden": False, "reason": "no tax rate for country BR"}],
        daily_usage=[{"day": d, "tenant_id": t, "events": 1000 + 10 * i + 100 * k}
                     for i, d in enumerate(days) for k, t in enumerate(("t-0001", "t-0002"))],
        cost_by_service=[{"service": "AmazonEC2", "cost": Decimal("30000")},
                         {"service": "AmazonS3", "cost": Decimal("11000.12")}],
        cost_by_day=[{"usage_date": d, "allocated": Decimal("1200"), "quarantined": Decimal("60")} for d in days],
        margin_by_tenant=[{"tenant_id": "t-0001", "revenue_usd": Decimal("60000"), "allocated_cost": Decimal("20000"),
                           "gross_margin": Decimal("40000"), "margin_pct": Decimal("66.67")},
                          {"tenant_id": "t-0002", "revenue_usd": Decimal("1000"), "allocated_cost": Decimal("3000"),
                           "gross_margin": Decimal("-2000"), "margin_pct": Decimal("-200")}],
    )  # fmt: skip


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("rror" in line or "Uncaught" in line)]


def test_report_text_without_a_browser():
    html = render(figures())
    assert "Monthly close: October 2026" in html
    assert "98,211.07 USD" in html and "1,520.40 EUR" in html
    assert "22 issued" in html and "2 blocked" in html
    assert 'class="failed">failed' in html and "no tax rate for country BR" in html
    for chart in CHARTS:
        assert "<svg" in html.split(f'id="chart-{chart}"')[1].split("</figure>")[0]


def test_daily_usage_is_drawn_on_a_log_scale_so_small_tenants_show():
    f = figures()
    # One tenant with ~100 times the other's events: on a linear axis the small one is a flat line.
    f.daily_usage = [{**r, "events": r["events"] * 100} if r["tenant_id"] == "t-0001" else r for r in f.daily_usage]
    section = render(f).split('id="chart-daily_usage"')[1].split("</figure>")[0]
    # matplotlib writes each tick label into the SVG as a comment: log ticks are powers of ten.
    assert "10^{3}" in section and "10^{5}" in section
    assert "events per day (log scale)" in section


def test_charts_name_tenants_as_the_catalog_does():
    """Tenants by catalog name in the legend and under the bars (matplotlib keeps each label's
    text in a comment beside its glyphs); two tenants of one name keep their ids beside it."""
    f = figures()
    names = {"t-0001": "Acme Ltd", "t-0002": "Acme Ltd"}
    f.daily_usage = [{**r, "tenant_name": names[r["tenant_id"]]} for r in f.daily_usage]
    f.margin_by_tenant = [{**r, "tenant_name": "Zeta GmbH" if r["tenant_id"] == "t-0001" else None}
                          for r in f.margin_by_tenant]  # fmt: skip
    page = render(f)
    usage = page.split('id="chart-daily_usage"')[1].split("</figure>")[0]
    assert "<!-- Acme Ltd (t-0001) -->" in usage and "<!-- Acme Ltd (t-0002) -->" in usage
    margins = page.split('id="chart-margin_by_tenant"')[1].split("</figure>")[0]
    assert "<!-- Zeta GmbH -->" in margins and "<!-- t-0002 -->" in margins  # no name: the id
    assert "<!-- t-0001 -->" not in margins


def test_an_empty_period_says_so_instead_of_drawing():
    html = render(CloseFigures(period=date(2026, 10, 1)))
    assert html.count("No data for this chart.") == len(CHARTS)
    assert "The gate has not run for this period." in html


@needs_chromium
def test_report_renders_in_chromium_with_its_charts(tmp_path):
    page = tmp_path / "2026-10.html"
    page.write_text(render(figures()))

    dom = chromium(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_errors(dom.stderr) == []
    for chart in CHARTS:
        section = dom.stdout.split(f'id="chart-{chart}"')[1].split("</figure>")[0]
        assert "<svg" in section and ("<path" in section or "<rect" in section)

    shot = tmp_path / "report.png"
    done = chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1100,2600", "--hide-scrollbars")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    # matplotlib's first series colour (#1f77b4) and the bars' orange (#ff7f0e) are on the page
    present = {rgb for _, rgb in colours}
    assert (31, 119, 180) in present and (255, 127, 14) in present


@needs_chromium
def test_console_error_detection_works(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('boom'); undefinedFunction();</script></body></html>")
    assert console_errors(chromium(page, tmp_path, "--dump-dom").stderr)
