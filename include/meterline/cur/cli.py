"""`meterline generate cur` and `meterline load cur`: the AWS cost feed at a terminal."""

from __future__ import annotations

import argparse
from datetime import date


def _say(message: str) -> None:
    print(f"[meterline] {message}", flush=True)


def _month(text: str) -> date:
    return date.fromisoformat(f"{text}-01" if len(text) == 7 else text).replace(day=1)


def cmd_generate(args: argparse.Namespace) -> int:
    from meterline.config import settings
    from meterline.landing import Zone
    from meterline.synthetic.cur import generate

    url = args.landing or settings().landing_url
    formats = ("cur2", "legacy-csv", "legacy-parquet") if args.format == "all" else (args.format,)
    months = generate(
        Zone(url),
        start=args.start,
        months=args.months,
        rows=args.rows,
        deliveries=args.deliveries,
        formats=formats,
        seed=args.seed,
        tenants=args.tenants,
    )
    for m in months:
        tagged = int((m.truth["tenant"] != "").sum())
        _say(
            f"CUR {m.period:%Y-%m}: {args.deliveries} deliveries ({', '.join(formats)}),"
            f" final {m.table.num_rows} lines,"
            f" {tagged} tagged, unblended {m.decimal('unblended')}, billed {m.decimal('billed')}"
            f"{', new columns (drift)' if m.drift else ''}, under {url}/cur/"
        )
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from meterline.cur.load import run, summarise

    summary = run(landing_url=args.landing)
    report = summarise(summary)
    _say(
        f"CUR deliveries: {report['found']} found, {report['loaded']} loaded, {report['skipped']} skipped,"
        f" {len(report['waiting'])} waiting"
    )
    for period, figures in sorted(report["periods"].items()):
        _say(
            f"  {period}: {figures['rows']} rows,"
            f" unblended {figures['unblended_cost']}, billed {figures['billed_cost']}"
        )
    for waiting in report["waiting"]:
        _say(f"  WAITING {waiting}")
    for failure in report["failed"]:
        _say(f"  FAILED {failure}")
    return 1 if report["failed"] else 0


def register(generate: argparse._SubParsersAction, load: argparse._SubParsersAction) -> None:
    gen = generate.add_parser("cur", help="AWS Cost and Usage Report deliveries (legacy CSV/Parquet, CUR 2.0)")
    gen.add_argument("--start", type=_month, required=True, help="first billing period, YYYY-MM")
    gen.add_argument("--months", type=int, default=1)
    gen.add_argument("--rows", type=int, default=10_000, help="line items of a month's final delivery")
    gen.add_argument("--deliveries", type=int, default=3, help="month-to-date restatements per month, the last final")
    gen.add_argument("--format", choices=["cur2", "legacy-csv", "legacy-parquet", "all"], default="cur2")
    gen.add_argument("--tenants", type=int, default=12)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--landing", help="landing zone URL (default LANDING_URL)")
    gen.set_defaults(func=cmd_generate)

    ld = load.add_parser("cur", help="load every new CUR delivery under LANDING_URL/cur/ into raw.cur_line_items")
    ld.add_argument("--landing", help="landing zone URL (default LANDING_URL)")
    ld.set_defaults(func=cmd_load)
