"""Benchmark: draft invoices for N subscriptions x 5 metrics over one generated month.

    .venv/bin/python bench/bench_invoices.py [--subscriptions 10000] [--hours 12] [--repeat 3] [--write-results]

In a database of its own: the catalog generator writes N subscriptions (one tenant per ten),
`load_catalog` validates and loads it, hourly usage (`--hours` rows per subscription and metric)
goes into marts.usage_metered_hourly by COPY, the catalog staging views and snapshots are built
once, then the invoice models (intermediate/billing and marts/billing: split by month, pricing,
lines, credits, header) are built `--repeat` times with `dbt run`, limited to the month by the
invoice_period_from / invoice_period_to vars. Reported: wall time of each `dbt run` (dbt start-up
and parse included) and the models' own SQL time from run_results.json; medians. Target: < 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from _timing import dbt_timed, machine, write_section

from meterline import transform, warehouse
from meterline.catalog.load import load_catalog
from meterline.period import Period
from meterline.synthetic.catalog import generate_catalog

PERIOD = date(2026, 10, 1)
DATABASE = "meterline_bench_invoices"
INVOICE_MODELS = [
    "path:models/intermediate/billing",
    "path:models/marts/billing",
    "--exclude",
    "fct_tenant_margin",
    "fct_period_margin",
]
# One month's drafts, built as of that month's close (dbt var as_of; the period vars narrow to it).
VARS = json.dumps(
    {
        "invoice_period_from": PERIOD.isoformat(),
        "invoice_period_to": PERIOD.isoformat(),
        "as_of": Period.parse(PERIOD).closes_at.isoformat(),
    }
)
RANGES = {
    "llm_tokens": 1_000_000,
    "api_requests": 20_000,
    "storage_bytes": 10_000_000,
    "compute_ms": 5_000_000,
    "storage_peak_bytes": 500_000_000,
}


def _usage(subscription_rows: list[dict[str, str]], hours: int, seed: int = 5):
    rng = random.Random(seed)
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    for r in subscription_rows:
        a = max(datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")), start)
        b = min(datetime.fromisoformat(r["ended_at"].replace("Z", "+00:00")) if r["ended_at"] else end, end)
        span = int((b - a).total_seconds() // 3600)
        if span <= 0:
            continue
        for metric, high in RANGES.items():
            for h in rng.sample(range(span), min(hours, span)):
                yield (r["subscription_id"], metric, a + timedelta(hours=h), Decimal(rng.randint(0, high)))


def _dbt(url: str, args: list[str]) -> tuple[float, float]:
    wall, nodes = dbt_timed(url, args)
    return wall, sum(nodes.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--hours", type=int, default=12, help="usage rows per subscription and metric")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--keep", action="store_true", help=f"leave the database {DATABASE} for EXPLAIN")
    args = parser.parse_args()

    # dbt's target/ of its own: the shared one belongs to whoever else runs dbt in this checkout.
    scratch = Path(tempfile.mkdtemp(prefix="bench-invoices-dbt-"))
    os.environ["DBT_TARGET_PATH"] = str(scratch / "target")
    os.environ["DBT_LOG_PATH"] = str(scratch / "logs")
    server = warehouse.url()
    warehouse.drop_database(server, DATABASE)
    url = warehouse.with_database(server, DATABASE)
    warehouse.bootstrap(url)
    lines: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as landing:
            t0 = time.perf_counter()
            catalog = generate_catalog(
                landing, period=PERIOD, tenants=max(1, args.subscriptions // 10), subscriptions=args.subscriptions
            )
            generated = time.perf_counter() - t0
            t0 = time.perf_counter()
            load_catalog(url, landing)
            loaded = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warehouse.connect(url, autocommit=True) as conn:
            conn.execute(
                "create table marts.usage_metered_hourly (subscription_id uuid not null, metric_code text not null,"
                " hour timestamptz not null, quantity numeric not null, event_type text)"
            )
            with conn.cursor().copy(
                "copy marts.usage_metered_hourly (subscription_id, metric_code, hour, quantity) from stdin"
            ) as cp:
                for row in _usage(catalog.files["subscriptions.csv"], args.hours):
                    cp.write_row(row)
            conn.execute("analyze marts.usage_metered_hourly")
            usage_rows = conn.execute("select count(*) from marts.usage_metered_hourly").fetchone()[0]
        usage_time = time.perf_counter() - t0
        transform.run(
            ["build", "--select", "currencies", "path:models/staging/catalog", "path:models/staging/billing",
             "path:models/staging/events", "path:snapshots", "--indirect-selection", "cautious", "--quiet"],
            url,
        )  # fmt: skip

        runs = [_dbt(url, ["run", "--select", *INVOICE_MODELS, "--vars", VARS]) for _ in range(args.repeat)]
        tests = _dbt(url, ["test", "--select", *INVOICE_MODELS, "--vars", VARS, "--exclude", "test_type:unit"])
        with warehouse.connect(url) as conn:
            invoices, total_lines, blocked = conn.execute(
                "select count(*), sum(line_count), count(*) filter (where status = 'blocked') from marts.invoice_header"
            ).fetchone()
        wall = statistics.median(r[0] for r in runs)
        sql_time = statistics.median(r[1] for r in runs)
        lines = [
            f"subscriptions                      {args.subscriptions:>10,} ({len(catalog.files['subscriptions.csv']):,}"
            " catalog rows, plan changes included)",
            f"usage rows (hourly, 5 metrics)     {usage_rows:>10,}",
            f"draft invoices / lines built       {invoices:>10,} / {total_lines:,} ({blocked} blocked)",
            f"generate catalog                   {generated:>10.2f} s",
            f"validate + load catalog            {loaded:>10.2f} s",
            f"COPY usage                         {usage_time:>10.2f} s",
            f"dbt run, invoice models (median)   {wall:>10.2f} s wall   runs: "
            + ", ".join(f"{r[0]:.1f}" for r in runs),
            f"  of which models' SQL (median)    {sql_time:>10.2f} s",
            f"dbt test, invoice models' tests    {tests[0]:>10.2f} s wall ({tests[1]:.2f} s SQL)",
            f"target: dbt run < 60 s             {'met' if wall < 60 else 'NOT met'}",
        ]
        print("\n".join(lines))
    finally:
        if not args.keep:
            warehouse.drop_database(server, DATABASE)
    if args.write_results:
        _write_results(lines, args)
    return 0


def _write_results(lines: list[str], args: argparse.Namespace) -> None:
    write_section(
        "bench_invoices",
        [
            "## Draft invoices (bench/bench_invoices.py)",
            "",
            f"{machine()}; shared 2-core machine, other engineers' tests running alongside.",
            f"Command: `.venv/bin/python bench/bench_invoices.py --subscriptions {args.subscriptions} "
            f"--hours {args.hours} --repeat {args.repeat} --write-results`",
            "",
            "```",
            *lines,
            "```",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
