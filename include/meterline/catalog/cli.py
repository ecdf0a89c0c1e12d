"""`meterline generate catalog` and `meterline load catalog`: the billing catalog at a terminal."""

from __future__ import annotations

import argparse
from datetime import date

from meterline.period import month_arg


def _say(message: str) -> None:
    print(f"[meterline] {message}", flush=True)


def cmd_generate(args: argparse.Namespace) -> int:
    from meterline.config import settings
    from meterline.synthetic.catalog import generate_catalog

    url = args.landing or settings().landing_url
    g = generate_catalog(
        url, seed=args.seed, tenants=args.tenants, subscriptions=args.subscriptions, period=args.period
    )
    counts = ", ".join(f"{name} {n}" for name, n in g.row_counts.items())
    _say(f"catalog for {args.period:%Y-%m} under {url}/catalog/: {counts}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from meterline.catalog.load import load_catalog, snapshot_catalog
    from meterline.catalog.validate import CatalogError

    try:
        result = load_catalog(None, args.landing, actor=args.actor)
    except CatalogError as exc:
        _say(str(exc))
        return 1
    _say(f"catalog loaded from {result.source}: {result.total_rows} rows ({result.row_counts})")
    if not args.no_snapshot:
        snapshot_catalog(None)
        _say("catalog snapshots updated (dbt)")
    return 0


def register(generate: argparse._SubParsersAction, load: argparse._SubParsersAction) -> None:
    gen = generate.add_parser("catalog", help="a billing catalog export (CSV files under catalog/)")
    gen.add_argument(
        "--period", type=month_arg, default=date(2026, 10, 1), help="the month it is built around, YYYY-MM"
    )
    gen.add_argument("--tenants", type=int, default=12)
    gen.add_argument("--subscriptions", type=int, default=24)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--landing", help="landing zone URL (default LANDING_URL)")
    gen.set_defaults(func=cmd_generate)

    ld = load.add_parser("catalog", help="validate and load the catalog export into raw.catalog_*, then snapshot it")
    ld.add_argument("--landing", help="landing zone URL (default LANDING_URL)")
    ld.add_argument("--actor", default="cli", help="who loads it (ops.audit_log)")
    ld.add_argument("--no-snapshot", action="store_true", help="load only; skip the dbt snapshots")
    ld.set_defaults(func=cmd_load)
