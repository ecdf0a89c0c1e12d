"""Budgets: budget_master and budget_status through real dbt over a known month, alerts sent
once per threshold crossing to a local webhook, and the freshness check."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from _gate_month import build

from meterline import transform
from meterline.budgets.alerts import freshness, send_alerts
from meterline.budgets.load import BudgetsError, load_budgets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUDGETS = """budget_id,scope_type,scope_id,amount,currency,thresholds
b-acme,tenant,t-0001,150.00,USD,80|100
b-beta,tenant,t-0002,200.00,EUR,80|100
b-kappa,tenant,t-0003,100.00,USD,80|100
b-ec2,service,AmazonEC2,100.00,USD,50|80|100
"""


class Webhook:
    """A local HTTP server that records each JSON body posted to it; `fail` answers 500."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.fail = False
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.fail:
                    self.send_response(500)
                else:
                    hook.received.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/budgets"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()


def refresh(url: str) -> None:
    transform.run(
        ["build", "--select", "currencies", "stg_budgets__budgets", "budget_master", "budget_status",
         "--indirect-selection", "cautious", "--vars", '{"budget_as_of": "2025-03-10"}'],
        url,
        capture_output=True,
    )  # fmt: skip


@pytest.fixture
def month(db, warehouse_url: str, tmp_path: Path) -> str:
    build(db)  # invoice_header and fact_cost_raw of March 2025, figures known to the cent
    (tmp_path / "budgets").mkdir()
    (tmp_path / "budgets" / "budgets.csv").write_text(BUDGETS)
    assert load_budgets(warehouse_url, str(tmp_path)) == 4
    refresh(warehouse_url)
    return warehouse_url


def test_budget_status_actual_forecast_and_state(month, db):
    rows = db.execute(
        "select budget_id, period_start::text, actual, forecast, pct_used, thresholds_crossed::text, state"
        " from marts.budget_status order by budget_id"
    ).fetchall()
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
    assert freshness(month)[0] is True
    db.execute("update marts.budget_master set last_refreshed_at = now() - interval '25 hours'")
    passed, reason = freshness(month)
    assert not passed and reason.endswith(f"older than {timedelta(hours=24)}")


def test_crossing_80_then_100_alerts_twice_over_any_number_of_reruns(month, db, webhook):
    sent = [(a.budget_id, a.threshold) for a in send_alerts(month, webhook.url)]
    assert sent == [("b-acme", 80), ("b-beta", 80), ("b-beta", 100), ("b-ec2", 50)]
    assert send_alerts(month, webhook.url) == []
    assert send_alerts(month, webhook.url) == []

    # Acme's March grows to 160.00 (106.67 %): only the 100 % crossing is new.
    db.execute("update marts.invoice_header set subtotal = 160.00 where tenant_id = 't-0001'")
    refresh(month)
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


def test_a_bad_budgets_file_is_refused_whole(warehouse_url, db, tmp_path):
    (tmp_path / "budgets").mkdir()
    (tmp_path / "budgets" / "budgets.csv").write_text(
        BUDGETS + "b-x,team,t-9,10,USD,80\nb-y,tenant,t-9,ten,USD,80\nb-acme,tenant,t-9,10,USD,80\n"
    )
    with pytest.raises(BudgetsError) as refused:
        load_budgets(warehouse_url, str(tmp_path))
    where = f"{tmp_path}/budgets/budgets.csv"
    assert str(refused.value).splitlines() == [
        "budgets refused:",
        f"{where}: line 6: scope_type must be tenant or service, with a scope_id",
        f"{where}: line 7: amount or thresholds not numbers",
        f"{where}: line 8: budget_id missing or repeated",
    ]
    assert db.execute("select count(*) from raw.budgets").fetchone()[0] == 0
