"""`meterline generate payments` and `meterline load payments`: processor exports at a terminal."""

from __future__ import annotations

import argparse

from meterline.invoicing.cli import period_arg


def _say(message: str) -> None:
    print(f"[meterline] {message}", flush=True)


def cmd_generate(args: argparse.Namespace) -> int:
    from meterline.config import settings
    from meterline.synthetic.payments import generate_payments

    url = args.landing or settings().landing_url
    g = generate_payments(None, url, args.period, seed=args.seed)
    if not g.cases:
        _say(f"no live issued invoice for {args.period}: exports hold only the unknown-invoice payment")
    _say(
        f"payments for {len(g.cases)} invoices of {args.period}: {g.rows} rows in {len(g.files)} files"
        f" under {url}/payments/"
    )
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from meterline.payments.load import load_payments

    result = load_payments(None, args.landing, actor=args.actor)
    _say(result.summary())
    for number in result.paid:
        _say(f"paid: {number}")
    for m in result.mismatches:
        _say(f"PAYMENT_MISMATCH:{m.payment_id} ({m.reason}): {m.detail}")
    return 1 if result.unreadable else 0


def register(generate: argparse._SubParsersAction, load: argparse._SubParsersAction) -> None:
    gen = generate.add_parser("payments", help="processor exports (CSV and JSON) paying a month's issued invoices")
    gen.add_argument(
        "--period", type=period_arg, required=True, help="the invoices' month, YYYY-MM (paid the month after)"
    )
    gen.add_argument("--seed", type=int, default=11)
    gen.add_argument("--landing", help="landing zone URL (default LANDING_URL)")
    gen.set_defaults(func=cmd_generate)

    ld = load.add_parser("payments", help="load new exports under payments/ into billing.payment_txn and match them")
    ld.add_argument("--landing", help="landing zone URL (default LANDING_URL)")
    ld.add_argument("--actor", default="cli", help="who loads them (ops.audit_log of invoices paid)")
    ld.set_defaults(func=cmd_load)
