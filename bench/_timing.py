"""What the benchmarks share: timing a call or a dbt invocation, and writing a section of RESULTS.md.

Imported by the bench scripts as `_timing` (they run as `python bench/<script>.py`, so this folder
is on the path).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn()` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def dbt_timed(url: str, args: list[str]) -> tuple[float, dict[str, float]]:
    """Run dbt (`meterline.transform.run`) against `url`: its wall time (start-up and parse
    included) and each node's own execution time from run_results.json, by unique_id."""
    from meterline import transform

    start = time.perf_counter()
    transform.run(args, url, capture_output=True, text=True)
    wall = time.perf_counter() - start
    results = json.loads((transform.target_dir() / "run_results.json").read_text())["results"]
    return wall, {r["unique_id"]: r["execution_time"] for r in results}


def machine() -> str:
    """The date, machine and Python a result was measured on, for a results header."""
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} {platform.system()}, "
        f"Python {sys.version.split()[0]}, embedded PostgreSQL"
    )


def write_section(marker: str, lines: list[str]) -> None:
    """Put `lines` in RESULTS.md between `<!-- {marker}:start -->` and `<!-- {marker}:end -->`,
    replacing what was there, or at the end of the file the first time."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = "\n".join([start, *lines, end])
    if start in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1] if end in rest else ""
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)
