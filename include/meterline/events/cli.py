"""`meterline generate events` and `meterline load events`: the usage-event feed at a terminal."""

from __future__ import annotations

import argparse
from datetime import date


def _say(message: str) -> None:
    print(f"[meterline] {message}", flush=True)


def cmd_generate(args: argparse.Namespace) -> int:
    from meterline.config import settings
    from meterline.synthetic.events import CatalogMissingError, Noise, generate

    url = args.landing or settings().landing_url
    noise = Noise() if not args.no_noise else Noise(duplicate_rate=0, late_rate=0, invalid_rate=0)
    try:
        g = generate(
            url,
            args.start,
            args.days,
            events_per_day=args.events_per_day,
            files_per_day=args.files_per_day,
            seed=args.seed,
            noise=noise,
            signing_key=settings().signing_key,
        )
    except CatalogMissingError as exc:
        _say(str(exc))
        return 2
    totals = g.manifest["totals"]
    _say(
        f"events {g.manifest['start']}..{g.manifest['end']}: {len(g.files)} files, {totals['lines']} lines, "
        f"{g.manifest['accepted_distinct_events']} distinct valid events, {totals['duplicates']} duplicates, "
        f"{totals['late']} late, {totals['rejected']} invalid, under {url}/events/"
    )
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from meterline.events.load import load_partition

    failed = False
    for offset in range(args.days):
        day = date.fromordinal(args.day.toordinal() + offset)
        result = load_partition(day, landing_url=args.landing)
        _say(result.summary())
        failed = failed or bool(result.unreadable)
    return 1 if failed else 0


def register(generate: argparse._SubParsersAction, load: argparse._SubParsersAction) -> None:
    gen = generate.add_parser("events", help="usage-event dumps (reads catalog/subscriptions.csv, metrics.csv)")
    gen.add_argument("--start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD")
    gen.add_argument("--days", type=int, default=1)
    gen.add_argument("--events-per-day", type=int, default=10_000)
    gen.add_argument("--files-per-day", type=int, default=4)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--no-noise", action="store_true", help="no duplicates, late or invalid rows")
    gen.add_argument("--landing", help="landing zone URL (default LANDING_URL)")
    gen.set_defaults(func=cmd_generate)

    ld = load.add_parser("events", help="load day partitions of usage events into raw.events")
    ld.add_argument("--day", type=date.fromisoformat, required=True, help="the day partition, YYYY-MM-DD")
    ld.add_argument("--days", type=int, default=1, help="this many consecutive days from --day")
    ld.add_argument("--landing", help="landing zone URL (default LANDING_URL)")
    ld.set_defaults(func=cmd_load)
