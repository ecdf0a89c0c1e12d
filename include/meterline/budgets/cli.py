"""`meterline budgets refresh`: the daily budget refresh at a terminal (as the refresh_budgets DAG
does). Budgets themselves are loaded with the catalog: `meterline load catalog` (budgets.csv)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, date, datetime

WEBHOOK_ENV = "METERLINE_BUDGET_WEBHOOK_URL"


def _say(message: str) -> None:
    print(f"[meterline] {message}", flush=True)


def cmd_refresh(args: argparse.Namespace) -> int:
    from meterline.budgets import alerts
    from meterline.budgets.refresh import refresh

    try:
        # A manual run is as of the day it is started unless told otherwise (--help says so).
        result = refresh(None, args.as_of or datetime.now(UTC).date())
    except RuntimeError as exc:
        _say(str(exc))
        return 1
    _say(result.summary())
    if args.no_alerts:
        return 0
    if not args.webhook:
        waiting = alerts.pending(None)
        _say(
            f"{len(waiting)} threshold crossing(s) not alerted yet: no webhook (--webhook or {WEBHOOK_ENV});"
            " they are sent by the first refresh that has one"
        )
        return 0
    sent = alerts.send_alerts(None, args.webhook)
    _say(f"{len(sent)} alert(s) sent" + "".join(f"\n  {a.payload()['text']}" for a in sent))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    budgets = commands.add_parser("budgets", help="budgets: refresh budget_master / budget_status and send alerts")
    actions = budgets.add_subparsers(dest="action", required=True)
    rf = actions.add_parser(
        "refresh",
        help="rebuild budget_master and budget_status as of a day, then alert each threshold newly crossed",
    )
    rf.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="the day budgets are measured on, YYYY-MM-DD (default: today, UTC, for a manual run)",
    )
    rf.add_argument(
        "--webhook", default=os.environ.get(WEBHOOK_ENV), help=f"where alerts are posted (default ${WEBHOOK_ENV})"
    )
    rf.add_argument("--no-alerts", action="store_true", help="refresh only; send nothing")
    rf.set_defaults(func=cmd_refresh)
