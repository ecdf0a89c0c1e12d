"""The close report's figures for the hand-written month (tests/handwritten_month.py), against
the amounts worked out by hand in that module's docstring: the cost summed once, the quarantine
pool as its own figure, gross margin as revenue less all cloud cost, yen without decimals."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from handwritten_month import CLOUD_COST, PERIOD, PERIOD_START

from meterline import warehouse
from meterline.invoicing.emit import emit
from meterline.reporting.close_report import gather, write_close_report

pytestmark = pytest.mark.integration

# By hand, from handwritten_month: pre-tax after credits per invoice, and the currencies list's
# indicative rates (EUR 1.08, JPY 0.0067 USD), each tenant rounded to the cent.
REVENUE = {"USD": Decimal("130.00"), "EUR": Decimal("202.35"), "JPY": Decimal("6234")}
REVENUE_USD = Decimal("130.00") + Decimal("218.54") + Decimal("41.77")  # 202.35 x 1.08, 6234 x 0.0067
CLOUD = Decimal("100.12")  # 100.123456, rounded once
TENANTS_COST = Decimal("40.06") + Decimal("30.06")  # the two tagged EC2 lines
POOL = Decimal("30.00")  # the untagged S3 line no rule allocates


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_report_figures_of_the_handwritten_month(gated_month_url, tmp_path):
    month_url = gated_month_url  # the month after the suites and a gate that passed (pass_gate)
    assert round(CLOUD_COST, 2) == CLOUD
    issued = emit(month_url, PERIOD, str(tmp_path / "outbox"), issued_at=datetime(2025, 4, 2, tzinfo=UTC)).issued
    assert len(issued) == 3

    with warehouse.connect(month_url) as conn:
        f = gather(conn, PERIOD_START)
    assert f.revenue == REVENUE
    assert (f.raw_cost, f.allocated_cost, f.quarantined_cost) == (CLOUD, TENANTS_COST, POOL)
    assert f.revenue_usd == REVENUE_USD == Decimal("390.31")
    assert f.gross_margin_usd == REVENUE_USD - CLOUD == Decimal("290.19")
    assert f.margin_pct == Decimal("74.35")  # 290.19 / 390.31
    recon = {r["service"]: (r["raw_cost"], r["tenant_cost"], r["quarantined_cost"], r["variance"]) for r in f.recon}
    assert recon == {
        "AmazonEC2": (Decimal("70.12"), Decimal("70.12"), Decimal("0"), Decimal("0")),
        "AmazonS3": (Decimal("30.00"), Decimal("0"), Decimal("30.00"), Decimal("0")),
    }

    write_close_report(month_url, PERIOD_START, str(tmp_path / "outbox"))
    text = _text((tmp_path / "outbox" / "reports" / "2025-03.html").read_text())
    for shown in ("130.00 USD", "202.35 EUR", "6,234 JPY"):
        assert shown in text
    assert "6,234.00" not in text
    assert (
        "Cloud cost (CUR, all lines) 100.12 USD allocated to tenants 70.12 USD; unallocated (quarantine pool) 30.00 USD"
    ) in text
    assert (
        "Gross margin (revenue less all cloud cost) 290.19 USD revenue 390.31 USD at indicative rates; 74.35 % of it"
    ) in text
    assert "AmazonS3 30.00 USD 0.00 USD 30.00 USD 0.00 USD" in text
    assert "Definitions" in text and "Unallocated (quarantine pool)" in text
