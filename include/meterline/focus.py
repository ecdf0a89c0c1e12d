"""The FinOps FOCUS 1.2 export: `marts.focus_costs` of one billing period as a Parquet file, and
its check by the FinOps Foundation's `focus-validator` (docs/focus.md).

`export()` writes `OUTBOX_URL/focus/YYYY-MM.parquet` (or any local path or `s3://` URL) through
`meterline.landing.Zone`: money and quantities as decimal128 (never float), times as UTC
timestamps, one row per CUR line of the period's live delivery.

`validate()` runs `focus-validator` on such a file. The validator needs Python >= 3.12 and
numpy < 2, which the project's own environment (3.11) cannot host, so it lives in a throwaway
virtual environment of its own (`.venv-focus/`, made with uv from PyPI, reused while its pinned
versions are unchanged). It validates against the FOCUS 1.2 rules bundled in the package
(`--block-download`: nothing is fetched at run time) and writes a JUnit report, which is read
here: its exit code is 0 even when rules fail.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from meterline.landing import Zone
from meterline.period import month_arg

FOCUS_VERSION = "1.2"
MODEL = sql.Identifier("marts", "focus_costs")
PERIOD_COLUMN = "x_BillingPeriod"
# Scale of the exported decimals: costs keep the CUR's 8+ decimals and unit price x quantity
# products stay exact; values are rounded to it in SQL (half away from zero), never truncated.
DECIMAL_SCALE = 18
DECIMAL_TYPE = pa.decimal128(38, DECIMAL_SCALE)

# PostgreSQL type OIDs -> Arrow types of the export.
_NUMERIC, _TEXT, _VARCHAR, _TIMESTAMPTZ, _DATE, _INT8, _INT4, _BOOL = 1700, 25, 1043, 1184, 1082, 20, 23, 16
_ARROW_TYPES = {
    _NUMERIC: DECIMAL_TYPE,
    _TEXT: pa.string(),
    _VARCHAR: pa.string(),
    _TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    _DATE: pa.date32(),
    _INT8: pa.int64(),
    _INT4: pa.int32(),
    _BOOL: pa.bool_(),
}

# What AWS (and so this export) supports, in the validator's applicability criteria: the rules
# gated on them are checked. Not claimed: account display names (the CUR may lack them), more
# than one billing or sub-account type, pricing in another currency than billing, virtual currency.
APPLICABILITY_CRITERIA = (
    "AVAILABILITY_ZONE_SUPPORTED",
    "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
    "CAPACITY_RESERVATION_SUPPORTED",
    "COMMITMENT_DISCOUNT_SUPPORTED",
    "MULTIPLE_PRICING_CATEGORIES_SUPPORTED",
    "NEGOTIATED_PRICING_SUPPORTED",
    "PUBLIC_PRICE_LIST_SUPPORTED",
    "REGION_SUPPORTED",
    "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED",
    "SUB_ACCOUNT_SUPPORTED",
    "TAGGING_SUPPORTED",
    "UNIT_PRICING_SUPPORTED",
    "USAGE_MEASUREMENT_SUPPORTED",
)

# The validator's own environment: pinned, installed from PyPI only.
VALIDATOR_REQUIREMENTS = ("focus-validator==2.2.1", "numpy==1.26.4", "pyarrow==21.0.0")


class FocusExportError(RuntimeError):
    """The export could not be written (no data for the period, a type we cannot map)."""


class ValidatorUnavailable(RuntimeError):
    """No Python >= 3.12 on this machine, so focus-validator cannot run here."""


@dataclass(frozen=True)
class ExportResult:
    period: date
    uri: str
    rows: int
    billed_cost: Decimal
    effective_cost: Decimal
    charge_categories: dict[str, int]
    columns: list[str]


def _target(period: date, out: str | None) -> tuple[Zone, str]:
    """The zone and the file's path in it: OUTBOX_URL/focus/YYYY-MM.parquet unless `out` says."""
    if not out:
        from meterline.landing import outbox

        return outbox(), f"focus/{period:%Y-%m}.parquet"
    if out.startswith("s3://"):
        bucket_and_key = out[len("s3://") :]
        parent, _, name = bucket_and_key.rpartition("/")
        if not parent or not name:
            raise FocusExportError(f"--out {out}: an S3 URL needs a bucket and a file name")
        return Zone(f"s3://{parent}"), name
    path = Path(out).expanduser().resolve()
    return Zone(str(path.parent)), path.name


def _sum(table: pa.Table, column: str) -> Decimal:
    total = pc.sum(table.column(column)).as_py()
    return Decimal(0) if total is None else total


def _csv_batches(stream: io.BufferedReader, schema: pa.Schema) -> pacsv.CSVStreamingReader:
    """Arrow's streaming CSV reader over COPY's output, typed by the export schema."""
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=schema.names, block_size=8 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=schema,
            null_values=[""],
            strings_can_be_null=True,  # COPY writes NULL as an unquoted empty field, '' as ""
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )


def _copy(columns: list[tuple[str, int]], period: date) -> sql.Composed:
    """COPY of the period's rows as CSV: numerics rounded to the export's scale, times as ISO 8601
    UTC (`...Z`), so Arrow's CSV reader parses every column straight into its export type."""
    items = []
    for name, oid in columns:
        column = sql.Identifier(name)
        if oid == _NUMERIC:
            items.append(sql.SQL("round({}, {}) as {}").format(column, sql.Literal(DECIMAL_SCALE), column))
        elif oid == _TIMESTAMPTZ:
            items.append(
                sql.SQL("""to_char({} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as {}""").format(
                    column, column
                )
            )
        else:
            items.append(column)
    # x_CostLineId last: a commitment fee line and its Unused row share their line number.
    query = sql.SQL("select {} from {} where {} = {} order by {}, {}, {}").format(
        sql.SQL(", ").join(items),
        MODEL,
        sql.Identifier(PERIOD_COLUMN),
        sql.Literal(period),
        sql.Identifier("x_DeliveryId"),
        sql.Identifier("x_LineSeq"),
        sql.Identifier("x_CostLineId"),
    )
    return sql.SQL("copy ({}) to stdout with (format csv)").format(query)


class _CopyStream(io.RawIOBase):
    """A readable file over psycopg's COPY OUT chunks (for Arrow's streaming CSV reader)."""

    def __init__(self, chunks: Iterator[Any]):
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = bytes(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


# What `build` (re)creates: the FOCUS views and the lookups they map AWS's vocabulary through.
BUILD_SELECTION = ("aws_services", "aws_pricing_units", "path:models/marts/focus")


def build(conninfo: str | None = None) -> None:
    """(Re)create the FOCUS views (cheap: views over fact_cost_raw and fact_cost_allocated) and
    load their seeds; no tests run here (`dbt test --select path:models/marts/focus` does)."""
    from meterline import transform

    transform.run(
        ["build", "--select", *BUILD_SELECTION, "--resource-type", "seed", "--resource-type", "model"],
        conninfo,
        capture_output=True,
        text=True,
    )


def export(period: date, out: str | None = None, conninfo: str | None = None) -> ExportResult:
    """Write the FOCUS rows of `period` as Parquet; returns where, how many and their totals."""
    from meterline import warehouse

    conninfo = conninfo or warehouse.url()
    zone, relative = _target(period, out)
    sink = pa.BufferOutputStream()
    rows = 0
    billed = effective = Decimal(0)
    categories: Counter[str] = Counter()
    with warehouse.connect(conninfo) as conn:
        probe = conn.execute(sql.SQL("select * from {} limit 0").format(MODEL))
        columns = [(c.name, c.type_code) for c in probe.description]
        unknown = [f"{name} (oid {oid})" for name, oid in columns if oid not in _ARROW_TYPES]
        if unknown:
            raise FocusExportError(f"marts.focus_costs: no Parquet type for {', '.join(unknown)}")
        schema = pa.schema(
            [pa.field(name, _ARROW_TYPES[oid]) for name, oid in columns],
            metadata={
                "focus_version": FOCUS_VERSION,
                "billing_period": f"{period:%Y-%m}",
                "source": "meterline marts.focus_costs",
            },
        )
        names = [name for name, _ in columns]
        writer = pq.ParquetWriter(sink, schema, compression="zstd")
        with conn.cursor() as cursor, cursor.copy(_copy(columns, period)) as copy:
            stream = io.BufferedReader(_CopyStream(iter(copy)), buffer_size=1 << 20)
            if stream.peek(1):  # Arrow refuses an empty CSV; no rows is reported below
                for batch in _csv_batches(stream, schema):
                    table = pa.Table.from_batches([batch]).cast(schema)
                    rows += table.num_rows
                    billed += _sum(table, "BilledCost")
                    effective += _sum(table, "EffectiveCost")
                    counts = pc.value_counts(table.column("ChargeCategory")).to_pylist()
                    categories.update({item["values"]: item["counts"] for item in counts})
                    writer.write_table(table)
        writer.close()
    if rows == 0:
        raise FocusExportError(
            f"no FOCUS rows for {period:%Y-%m}: no CUR delivery of that period is loaded and built"
            " (meterline load cur, then dbt build of fact_cost_raw)"
        )
    uri = zone.write_bytes(relative, sink.getvalue().to_pybytes())
    return ExportResult(period, uri, rows, billed, effective, dict(sorted(categories.items())), names)


# ---------------------------------------------------------------- the validator


@dataclass
class RuleResult:
    rule_id: str
    status: str  # passed / failed / skipped
    message: str = ""

    @property
    def level(self) -> str:
        """M (mandatory), C (conditional) or O (optional): the rule id's suffix."""
        return self.rule_id.rsplit("-", 1)[-1] if "-" in self.rule_id else "?"


@dataclass
class ValidationReport:
    report_path: Path
    rules: list[RuleResult] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self, level: str | None = None) -> dict[str, int]:
        counted = Counter(r.status for r in self.rules if level is None or r.level == level)
        return {status: counted.get(status, 0) for status in ("passed", "failed", "skipped")}

    def failed(self, level: str | None = None) -> list[RuleResult]:
        return [r for r in self.rules if r.status == "failed" and (level is None or r.level == level)]


def find_python312() -> str:
    """A Python 3.12: FOCUS_VALIDATOR_PYTHON, python3.12 on PATH, or pyenv's 3.12.x.

    Exactly 3.12: focus-validator needs >= 3.12 and numpy < 2, and numpy 1.26 ships wheels up
    to 3.12 only (on 3.13 uv would compile numpy from source for many minutes). A pyenv shim
    that is not active for this folder fails its probe and the next candidate is tried."""
    candidates = [os.environ.get("FOCUS_VALIDATOR_PYTHON", ""), shutil.which("python3.12") or ""]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted((str(p) for p in pyenv_root.glob("versions/3.12.*/bin/python3.12")), reverse=True)
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    raise ValidatorUnavailable(
        "no Python 3.12 found (python3.12 on PATH, pyenv's versions/3.12.*, or FOCUS_VALIDATOR_PYTHON):"
        " focus-validator needs Python >= 3.12 with numpy < 2, which has wheels up to 3.12"
    )


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        raise ValidatorUnavailable("uv not found: it builds the validator's environment")
    return found


def validator_environment(venv_dir: Path) -> Path:
    """The validator's virtual environment, created or reused; returns its `focus-validator`."""
    marker = venv_dir / ".meterline-requirements"
    wanted = "\n".join(VALIDATOR_REQUIREMENTS)
    executable = venv_dir / "bin" / "focus-validator"
    if executable.exists() and marker.exists() and marker.read_text() == wanted:
        return executable
    python = find_python312()
    uv = _uv()
    subprocess.run([uv, "venv", "--quiet", "--clear", "-p", python, str(venv_dir)], check=True, timeout=300)
    # Wheels only for the compiled dependencies: never minutes of compiling numpy.
    binary_only = [arg for name in ("numpy", "pyarrow", "polars", "duckdb") for arg in ("--only-binary", name)]
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            *binary_only,
            "--python",
            str(venv_dir / "bin" / "python"),
            *VALIDATOR_REQUIREMENTS,
        ],
        check=True,
        timeout=900,
    )
    marker.write_text(wanted)
    return executable


def parse_junit(path: Path) -> list[RuleResult]:
    """One result per test case of focus-validator's JUnit report (a case is a rule id)."""
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        rule_id = case.get("name", "").split(" :: ")[0].strip()  # "BilledCost-C-000-M :: Composite"
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")  # a rule that could not run (e.g. a column it needs is missing)
        skipped = case.find("skipped")
        if failure is not None:
            results.append(RuleResult(rule_id, "failed", failure.get("message") or (failure.text or "").strip()))
        elif skipped is not None:
            results.append(RuleResult(rule_id, "skipped", skipped.get("message") or (skipped.text or "").strip()))
        else:
            results.append(RuleResult(rule_id, "passed"))
    return results


def _site_packages(executable: Path) -> Path:
    found = sorted(executable.parent.parent.glob("lib/python3*/site-packages/focus_validator"))
    if not found:
        raise ValidatorUnavailable(f"focus_validator package not found next to {executable}")
    return found[0].parent


def validate(parquet: Path, venv_dir: Path, report_dir: Path) -> ValidationReport:
    """Run focus-validator (FOCUS 1.2, bundled rules) on a Parquet file; read its JUnit report."""
    executable = validator_environment(venv_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / f"{parquet.stem}-focus-validator.xml"
    started = time.monotonic()
    completed = subprocess.run(
        [
            str(executable),
            "--data-file",
            str(parquet.resolve()),
            "--validate-version",
            FOCUS_VERSION,
            "--block-download",
            "--output-type",
            "unittest",
            "--output-destination",
            str(report.resolve()),
            "--applicability-criteria",
            ",".join(APPLICABILITY_CRITERIA),
        ],
        capture_output=True,
        text=True,
        check=False,
        # It opens its bundled currency list by the relative path focus_validator/rules/...
        cwd=_site_packages(executable),
        timeout=1800,
    )
    if not report.exists():
        raise RuntimeError(f"focus-validator wrote no report (exit {completed.returncode}): {completed.stderr[-3000:]}")
    return ValidationReport(report, parse_junit(report), time.monotonic() - started)


# ---------------------------------------------------------------- the command line


def _say(message: str) -> None:
    print(f"[meterline] {message}", flush=True)


def cmd_export_focus(args: argparse.Namespace) -> int:
    from meterline import audit, warehouse

    conninfo = warehouse.url()
    if not args.no_build:
        build(conninfo)
    try:
        result = export(args.period, args.out, conninfo)
    except FocusExportError as error:
        _say(f"FAILED {error}")
        return 1
    with warehouse.transaction(conninfo) as conn:
        audit.record(
            conn,
            actor=os.environ.get("USER", "meterline"),
            action="focus.exported",
            resource=result.uri,
            metadata={
                "period": f"{result.period:%Y-%m}",
                "rows": result.rows,
                "billed_cost": str(result.billed_cost),
                "charge_categories": result.charge_categories,
            },
        )
    _say(
        f"FOCUS {FOCUS_VERSION} export of {result.period:%Y-%m}: {result.rows} rows,"
        f" BilledCost {result.billed_cost}, EffectiveCost {result.effective_cost},"
        f" {json.dumps(result.charge_categories)} -> {result.uri}"
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """`meterline export focus --period YYYY-MM [--out PATH]`."""
    export_parser = commands.add_parser("export", help="export warehouse data in standard formats")
    formats = export_parser.add_subparsers(dest="format", required=True)
    focus = formats.add_parser("focus", help="the period's cloud cost as a FinOps FOCUS 1.2 Parquet file")
    focus.add_argument("--period", type=month_arg, required=True, help="the billing month, YYYY-MM")
    focus.add_argument(
        "--out", help="a local path or s3:// URL for the file (default OUTBOX_URL/focus/YYYY-MM.parquet)"
    )
    focus.add_argument("--no-build", action="store_true", help="do not (re)create the FOCUS views with dbt first")
    focus.set_defaults(func=cmd_export_focus)
