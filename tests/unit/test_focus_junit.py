"""Reading focus-validator's JUnit report: rule ids, levels, and what counts as a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline.focus import parse_junit

pytestmark = pytest.mark.unit

REPORT = """<?xml version='1.0' encoding='utf-8'?>
<testsuites name="FOCUS Validations" tests="5" failures="1" errors="1" skipped="1">
  <testsuite name="BilledCost-C-000-BilledCost">
    <testcase name="BilledCost-C-000-M :: Composite" time="0" />
  </testsuite>
  <testsuite name="BilledCost-C-005-BilledCost">
    <testcase name="BilledCost-C-005-C :: Validation" time="0">
      <failure name="BilledCost-C-005-C" message="Validation check for BilledCost">Failed</failure>
    </testcase>
  </testsuite>
  <testsuite name="SkuMeter-C-001-SkuMeter">
    <testcase name="SkuMeter-C-001-M :: None" time="0">
      <error message="Upstream dependency failed: CostAndUsage-D-059-C - required column not present" />
    </testcase>
  </testsuite>
  <testsuite name="Tags-C-009-Tags">
    <testcase name="Tags-C-009-M :: Validation" time="0"><skipped message="Validation check for Tags" /></testcase>
  </testsuite>
  <testsuite name="ChargeDescription-C-003-ChargeDescription">
    <testcase name="ChargeDescription-C-003-O :: Nullability" time="0" />
  </testsuite>
</testsuites>
"""


def test_parse_junit_reads_rule_ids_levels_and_counts_errors_as_failures(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(REPORT)
    results = parse_junit(report)
    assert [(r.rule_id, r.level, r.status) for r in results] == [
        ("BilledCost-C-000-M", "M", "passed"),
        ("BilledCost-C-005-C", "C", "failed"),
        ("SkuMeter-C-001-M", "M", "failed"),
        ("Tags-C-009-M", "M", "skipped"),
        ("ChargeDescription-C-003-O", "O", "passed"),
    ]
    assert results[2].message.startswith("Upstream dependency failed: CostAndUsage-D-059-C")
