"""Helpers for the CUR tests: landing zones built from the reference files and the generator."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cur"
LEGACY_SAMPLE = FIXTURES / "legacy-cur-sample.csv.gz"
CUR2_ROWS = FIXTURES / "cur2-sample-rows.csv"
CUR2_TABLE = FIXTURES / "cur2-athena-table.sql"


def legacy_sample_cost() -> tuple[int, Decimal]:
    """Rows and the sum of lineItem/UnblendedCost of the legacy reference file, by csv + Decimal."""
    with gzip.open(LEGACY_SAMPLE, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return len(rows), sum((Decimal(r["lineItem/UnblendedCost"] or "0") for r in rows), Decimal(0))


def place_legacy_sample(root: Path, assembly: str = "asm-0001", *, body: bytes | None = None) -> str:
    """The legacy reference file as AWS lays out a legacy CUR delivery; returns the period folder."""
    period_dir = root / "cur" / "acme" / "legacy-report" / "20231101-20231201"
    data = period_dir / assembly / "legacy-report-00001.csv.gz"
    data.parent.mkdir(parents=True, exist_ok=True)
    if body is None:
        shutil.copy(LEGACY_SAMPLE, data)
    else:
        data.write_bytes(body)
    manifest = {
        "assemblyId": assembly,
        "reportName": "legacy-report",
        "billingPeriod": {"start": "20231101T000000.000Z", "end": "20231201T000000.000Z"},
        "reportKeys": [f"exports/acme/legacy-report/20231101-20231201/{assembly}/legacy-report-00001.csv.gz"],
    }
    for folder in (period_dir / assembly, period_dir):
        (folder / "legacy-report-Manifest.json").write_text(json.dumps(manifest))
    return str(period_dir)


def cur2_rows_csv() -> bytes:
    return CUR2_ROWS.read_bytes()


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    return root


def legacy_rows() -> tuple[list[str], list[list[str]]]:
    """The legacy reference file's header and rows, as text."""
    with gzip.open(LEGACY_SAMPLE, "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_legacy(
    root: Path,
    period: str,
    assembly: str,
    header: list[str],
    rows: list[list[str]],
    *,
    report: str = "hostile",
    period_manifest: bool = True,
    creation_time: str | None = None,
    files: int = 1,
    extra_keys: tuple[str, ...] = (),
) -> Path:
    """A legacy CSV delivery as AWS lays it out: data and manifest in `<period>/<assembly>/`, and
    (unless `period_manifest` is False) the period-level manifest naming this assembly. No
    `creationTime` unless given: AWS's usual legacy manifest has none. `period` is `yyyymmdd-yyyymmdd`.
    `extra_keys` are report keys of files that are not written. Returns the assembly folder."""
    period_dir = root / "cur" / "acme" / report / period
    folder = period_dir / assembly
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    share = -(-len(rows) // files) if rows else 0
    for n in range(files):
        name = f"{report}-{n + 1:05d}.csv.gz"
        (folder / name).write_bytes(gzip.compress(csv_bytes(header, rows[n * share : (n + 1) * share])))
        keys.append(f"acme/{report}/{period}/{assembly}/{name}")
    keys += [f"acme/{report}/{period}/{assembly}/{name}" for name in extra_keys]
    manifest = {
        "assemblyId": assembly,
        "reportName": report,
        "billingPeriod": {"start": f"{period[:8]}T000000.000Z", "end": f"{period[9:]}T000000.000Z"},
        "reportKeys": keys,
    }
    if creation_time:
        manifest["creationTime"] = creation_time
    (folder / f"{report}-Manifest.json").write_text(json.dumps(manifest))
    if period_manifest:
        (period_dir / f"{report}-Manifest.json").write_text(json.dumps(manifest))
    return folder


def cost_of(header: list[str], rows: list[list[str]]) -> Decimal:
    """Sum of lineItem/UnblendedCost by Decimal: the independent oracle."""
    index = header.index("lineItem/UnblendedCost")
    return sum((Decimal(r[index] or "0") for r in rows), Decimal(0))
