"""Budget alerts: one webhook per budget, month and threshold crossed, ever.

Each alert is its own transaction: the `ops.budget_alerts` row is inserted first (its key is
budget, period, threshold: a re-run or a concurrent run finds it and sends nothing), then the
webhook is posted; if the post fails, the row is rolled back with it, so the next run retries.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from meterline import warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    budget_id: str
    period_start: date
    threshold: Decimal
    pct_used: Decimal
    actual: Decimal
    amount: Decimal
    currency: str
    state: str

    def payload(self) -> dict[str, str]:
        return {
            "text": (
                f"Budget {self.budget_id} {self.period_start:%Y-%m}: {self.pct_used} % used "
                f"({self.actual} of {self.amount} {self.currency}), threshold {self.threshold} % crossed"
            ),
            "budget_id": self.budget_id,
            "period": f"{self.period_start:%Y-%m}",
            "threshold": str(self.threshold),
            "pct_used": str(self.pct_used),
            "actual": str(self.actual),
            "amount": str(self.amount),
            "currency": self.currency,
            "state": self.state,
        }


def _post(url: str, body: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def crossings(conninfo: str) -> list[Alert]:
    """Every threshold each budget's month has crossed (marts.budget_status; none before it is built)."""
    with warehouse.connect(conninfo) as conn:
        if conn.execute("select to_regclass('marts.budget_status')").fetchone()[0] is None:
            return []
        rows = conn.execute(
            "select budget_id, period_start, t, pct_used, actual, amount, currency, state"
            " from marts.budget_status, unnest(thresholds_crossed) as t order by budget_id, period_start, t"
        ).fetchall()
    return [Alert(*row) for row in rows]


def pending(conninfo: str | None) -> list[Alert]:
    """The crossings no alert has been sent for yet (what send_alerts would send now)."""
    conninfo = conninfo or warehouse.url()
    with warehouse.connect(conninfo) as conn:
        sent = set(conn.execute("select budget_id, period_start, threshold from ops.budget_alerts").fetchall())
    return [a for a in crossings(conninfo) if (a.budget_id, a.period_start, a.threshold) not in sent]


def send_alerts(conninfo: str | None, webhook_url: str, *, timeout: float = 10.0) -> list[Alert]:
    """Send each crossing not alerted before; returns the alerts sent by this call."""
    conninfo = conninfo or warehouse.url()
    sent: list[Alert] = []
    for alert in crossings(conninfo):
        with warehouse.transaction(conninfo) as conn:
            new = conn.execute(
                "insert into ops.budget_alerts (budget_id, period_start, threshold, pct_used, actual, amount,"
                " currency, response_status) values (%s, %s, %s, %s, %s, %s, %s, 0)"
                " on conflict do nothing returning budget_id",
                [alert.budget_id, alert.period_start, alert.threshold, alert.pct_used, alert.actual, alert.amount,
                 alert.currency],
            ).fetchone()  # fmt: skip
            if new is None:
                continue
            status = _post(webhook_url, alert.payload(), timeout)
            conn.execute(
                "update ops.budget_alerts set response_status = %s"
                " where budget_id = %s and period_start = %s and threshold = %s",
                [status, alert.budget_id, alert.period_start, alert.threshold],
            )
        log.info("budget alert sent: %s", alert.payload()["text"])
        sent.append(alert)
    return sent


def webhook_url(host: str | None, *, schema: str | None = None, port: int | None = None, endpoint: str = "") -> str:
    """The URL an Airflow HTTP connection names: a host holding a whole URL (as HttpHook accepts),
    or schema://host:port, then the `endpoint` extra."""
    if not host:
        raise ValueError("the budget webhook connection has no host")
    base = host.rstrip("/") if "://" in host else f"{schema or 'https'}://{host}" + (f":{port}" if port else "")
    return base + (f"/{endpoint.lstrip('/')}" if endpoint else "")
