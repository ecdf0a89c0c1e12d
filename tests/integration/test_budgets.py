"""Budgets: budget_master and budget_status through real dbt over a known month (budgets as the
catalog loads them into raw.catalog_budgets), alerts sent once per threshold crossing to a local
webhook, and `meterline budgets refresh`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from _gate_month import add_budgets
from webhook import Webhook

from meterline import cli
from meterline.budgets.alerts import pending, send_alerts
from meterline.budgets.refresh import refresh

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AS_OF = date(2025, 3, 10)


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()


@pytest.fixture
def month(month_db, month_url: str) -> str:
    """The hand-written March 2025 (invoice_header and fact_cost_raw known to the cent) and its
    budgets, refreshed as of AS_OF."""
    add_budgets(month_db)
    result = refresh(month_url, AS_OF)
    assert (result.budgets, result.status_skipped) == (4, None)
    return month_url


def test_budget_status_actual_forecast_and_state(month, month_db):
    db = month_db
    rows = db.execute(
        "select budget_id, period_start::text, actual, forecast, pct_used, thresholds_crossed::text, state"
        " from marts.budget_status order by budget_id"
    ).fetchall()
    # As of 2025-03-10: March only, though the close built April's open drafts already.
    assert rows == [
        ("b-acme", "2025-03-01", Decimal("130.00"), Decimal("403.00"), Decimal("86.67"), "{80}", "warning"),
        ("b-beta", "2025-03-01", Decimal("202.35"), Decimal("627.29"), Decimal("101.18"), "{80,100}", "breached"),
        ("b-ec2", "2025-03-01", Decimal("70.12"), Decimal("217.38"), Decimal("70.12"), "{50}", "warning"),
        # 6234 JPY at 0.0067 USD
        ("b-kappa", "2025-03-01", Decimal("41.77"), Decimal("129.48"), Decimal("41.77"), "{}", "ok"),
    ]
    master = db.execute(
        "select budget_id, tenant_id, service, period_start::text from marts.budget_master order by 1"
    ).fetchall()
    assert master[0] == ("b-acme", "t-0001", None, "2025-03-01")
    assert master[2] == ("b-ec2", None, "AmazonEC2", "2025-03-01")


def test_crossing_80_then_100_alerts_twice_over_any_number_of_reruns(month, month_db, webhook):
    db = month_db
    sent = [(a.budget_id, a.threshold) for a in send_alerts(month, webhook.url)]
    assert sent == [("b-acme", 80), ("b-beta", 80), ("b-beta", 100), ("b-ec2", 50)]
    assert send_alerts(month, webhook.url) == []
    assert send_alerts(month, webhook.url) == []

    # Acme's March grows to 160.00 (106.67 %): only the 100 % crossing is new.
    db.execute(
        "update marts.invoice_drafts set subtotal = 160.00 where tenant_id = 't-0001' and period_start = '2025-03-01'"
    )
    refresh(month, AS_OF)
    webhook.fail = True  # the first attempt fails: nothing recorded, the next run retries
    with pytest.raises(OSError):
        send_alerts(month, webhook.url)
    webhook.fail = False
    assert [(a.budget_id, a.threshold) for a in send_alerts(month, webhook.url)] == [("b-acme", 100)]
    for _ in range(3):
        assert send_alerts(month, webhook.url) == []

    acme = [body for body in webhook.received if body["budget_id"] == "b-acme"]
    assert [(b["threshold"], b["pct_used"], b["state"]) for b in acme] == [
        ("80", "86.67", "warning"),
        ("100", "106.67", "breached"),
    ]
    assert len(webhook.received) == 5
    assert db.execute("select count(*), min(response_status) from ops.budget_alerts").fetchone() == (5, 200)


def test_refresh_command_prints_status_and_keeps_crossings_pending_without_a_webhook(month, month_db, webhook, capsys):
    db = month_db
    assert cli.main(["budgets", "refresh", "--as-of", "2025-03-10"]) == 0
    out = capsys.readouterr().out
    assert "budgets refreshed as of 2025-03-10: 4 budget(s)" in out
    assert "  b-beta 2025-03: 202.35 of 200.00 EUR (101.18 %), forecast 627.29, breached" in out
    assert "4 threshold crossing(s) not alerted yet: no webhook" in out
    assert db.execute("select count(*) from ops.budget_alerts").fetchone()[0] == 0

    assert cli.main(["budgets", "refresh", "--as-of", "2025-03-10", "--webhook", webhook.url]) == 0
    assert "4 alert(s) sent" in capsys.readouterr().out
    assert pending(month) == []  # a re-run sends nothing (test above)
    assert len(webhook.received) == 4


def test_before_the_first_close_only_budget_master_is_refreshed(db, warehouse_url):
    add_budgets(db)  # a new warehouse: budgets loaded, no invoice_header or fact_cost_raw yet
    result = refresh(warehouse_url, AS_OF)
    assert result.budgets == 4
    assert result.status_skipped == "no marts.invoice_header, marts.fact_cost_raw yet to measure spend from"
    assert db.execute("select to_regclass('marts.budget_status')").fetchone()[0] is None
    assert db.execute(
        "select count(*), bool_and(last_refreshed_at > now() - interval '5 minutes') from marts.budget_master"
    ).fetchone() == (4, True)
    assert pending(warehouse_url) == []
