"""The dbt project connects and builds against a real warehouse database."""

from __future__ import annotations

from datetime import date

import pytest

from meterline import transform

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_dbt_debug_and_build_pass(warehouse_url):
    debug = transform.run(["debug"], warehouse_url, capture_output=True, text=True)
    assert "All checks passed!" in debug.stdout
    build = transform.run(["build"], warehouse_url, as_of=date(2026, 11, 1), capture_output=True, text=True)
    assert build.returncode == 0
