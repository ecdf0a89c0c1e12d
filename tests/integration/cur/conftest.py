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
