"""Data-quality suites (great-expectations and dbt tests) whose results the invoice gate reads."""

from meterline.quality.suites import GX_SUITES, ExpectationResult, SuiteRun, run_suites

__all__ = ["GX_SUITES", "ExpectationResult", "SuiteRun", "run_suites"]
