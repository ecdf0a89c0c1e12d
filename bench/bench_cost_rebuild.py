"""Benchmark: `dbt build --select fact_cost_raw+` over three CUR months: full refresh, a rebuild
with nothing changed, and a rebuild after one month is restated.

    .venv/bin/python bench/bench_cost_rebuild.py [--rows 100000] [--repeat 3] [--write-results]

In a database of its own: three months of CUR 2.0 Parquet (`--rows` line items each, the CUR
generator bench_cur.py uses) loaded by the real loader (`meterline.cur.load.run`), a small
catalog, and everything upstream of fact_cost_raw+ built once. Then, `--repeat` times and in
turn: the full refresh (`--full-refresh`), the no-change rebuild (nothing delivered since the
last build), and a restatement (a new final delivery of the middle month is loaded first, by the
loader, untimed). The floor is the same dbt call with a selection of nothing (dbt's start-up and
parse). Reported: medians of wall time and of the nodes' own time (run_results.json), and the
ratio no-change / full refresh (target <= 10 %).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime

from _timing import dbt_timed, machine, write_section
from bench_cur import _seed_catalog

from meterline import transform, warehouse
from meterline.cur.load import run as load_cur
from meterline.landing import Zone
from meterline.period import Period
from meterline.synthetic import cur as gen

PERIODS = [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]
RESTATED = PERIODS[1]
DATABASE = "meterline_bench_cost_rebuild"
SELECTION = ["--select", "fact_cost_raw+"]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _fingerprint(conninfo: str) -> list[tuple]:
    """What each period of fact_cost_raw holds: delivery, rows, costs."""
    with warehouse.connect(conninfo) as conn:
        return conn.execute(
            "select billing_period, delivery_id, count(*), sum(billed_cost), sum(net_amortized_cost)"
            " from marts.fact_cost_raw group by 1, 2 order by 1"
        ).fetchall()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="CUR line items per month")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)

    as_of = Period.parse(PERIODS[-1]).closes_at
    server = warehouse.url()
    warehouse.drop_database(server, DATABASE)
    conninfo = warehouse.with_database(server, DATABASE)
    warehouse.bootstrap(conninfo)
    load_before = _uptime()
    timings: dict[str, list[tuple[float, float]]] = {"floor": [], "full": [], "nochange": [], "restated": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cost-rebuild-") as scratch:
            zone = Zone(scratch)
            started = time.perf_counter()
            months = {p: gen.month(p, args.rows) for p in PERIODS}
            for p, m in months.items():
                delivered = datetime(p.year + (p.month == 12), p.month % 12 + 1, 2, tzinfo=UTC)
                gen.write_cur2(zone, gen.restatement(m, 1, 1, final=True), p, delivered)
            generated = time.perf_counter() - started
            started = time.perf_counter()
            load_cur(conninfo, scratch)
            loaded = time.perf_counter() - started
            _seed_catalog(conninfo)
            transform.run(
                [
                    "build",
                    "--select",
                    "@fact_cost_raw",
                    "--exclude",
                    "fact_cost_raw+",
                    "--resource-type",
                    "model",
                    "seed",
                    "snapshot",
                ],
                conninfo,
                as_of=as_of,
                capture_output=True,
            )

            def build(kind: str, extra: list[str]) -> None:
                wall, nodes = dbt_timed_as_of(conninfo, ["build", *SELECTION, *extra], as_of)
                timings[kind].append((wall, sum(nodes.values())))
                print(f"{kind:<9} {wall:7.2f} s wall, {sum(nodes.values()):7.2f} s nodes", flush=True)

            build("full", ["--full-refresh"])  # the first build, untimed below: it creates the tables
            timings["full"].clear()
            for restatement in range(1, args.repeat + 1):
                timings["floor"].append(
                    (dbt_timed_as_of(conninfo, ["build", "--select", "none_such_node"], as_of)[0], 0)
                )
                build("full", ["--full-refresh"])
                before = _fingerprint(conninfo)
                build("nochange", [])
                assert _fingerprint(conninfo) == before, "a no-change rebuild changed fact_cost_raw"
                # A later final delivery of the middle month, with other lines (another seed).
                gen.write_cur2(
                    zone,
                    gen.restatement(gen.month(RESTATED, args.rows, seed=100 + restatement), 1, 1, final=True),
                    RESTATED,
                    datetime(2025, 3, 10 + restatement, tzinfo=UTC),
                )
                load_cur(conninfo, scratch)
                build("restated", [])
                after = _fingerprint(conninfo)
                assert [r for r in after if r[0] != RESTATED] == [r for r in before if r[0] != RESTATED]
                assert next(r for r in after if r[0] == RESTATED)[1] != next(r for r in before if r[0] == RESTATED)[1]
        line_count = sum(r[2] for r in _fingerprint(conninfo))
    finally:
        warehouse.drop_database(server, DATABASE)
    load_after = _uptime()

    def med(kind: str, i: int) -> float:
        return statistics.median(t[i] for t in timings[kind])

    def runs(kind: str) -> str:
        return ", ".join(f"{t[0]:.1f}" for t in timings[kind])

    full, nochange, restated, floor = med("full", 0), med("nochange", 0), med("restated", 0), med("floor", 0)
    lines = [
        f"3 CUR 2.0 months x {args.rows:,} line items = {line_count:,} lines in fact_cost_raw"
        f" (generated in {generated:.1f} s, loaded by the loader in {loaded:.1f} s)",
        f"floor: dbt build selecting nothing      {floor:7.2f} s wall  (runs: {runs('floor')})",
        f"full refresh (--full-refresh)           {full:7.2f} s wall, {med('full', 1):6.2f} s nodes"
        f"  (runs: {runs('full')})",
        f"no-change rebuild                       {nochange:7.2f} s wall, {med('nochange', 1):6.2f} s nodes"
        f"  (runs: {runs('nochange')})",
        f"one of three months restated            {restated:7.2f} s wall, {med('restated', 1):6.2f} s nodes"
        f"  (runs: {runs('restated')})",
        f"ratio no-change / full refresh          {nochange / full:7.1%}  (target <= 10 %)",
        f"ratio restated / full refresh           {restated / full:7.1%}",
        f"ratio (no-change - floor) / (full - floor) {(nochange - floor) / (full - floor):5.1%}",
        f"load before: {load_before}",
        f"load after:  {load_after}",
    ]
    print("\n".join(lines))
    if args.write_results:
        write_section(
            "bench_cost_rebuild",
            [
                "## Cost models rebuild (bench/bench_cost_rebuild.py)",
                "",
                f"{machine()}; shared 2-core machine (compare ratios).",
                f"Command: `.venv/bin/python bench/bench_cost_rebuild.py --rows {args.rows} --repeat {args.repeat}"
                " --write-results`",
                "",
                "```",
                *lines,
                "```",
            ],
        )
    return 0


def dbt_timed_as_of(conninfo: str, args: list[str], as_of: datetime) -> tuple[float, dict[str, float]]:
    """dbt_timed with the run's as-of instant in the environment (what transform.run(as_of=) sets)."""
    import os

    os.environ.update(transform.as_of_env(as_of))
    try:
        return dbt_timed(conninfo, args)
    except subprocess.CalledProcessError as e:
        print(e.stdout[-5000:], file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
