"""The smoke DAG runs end to end in Airflow against a real, fresh warehouse database."""

from __future__ import annotations

import pytest

from meterline import airflow_env, warehouse

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_warehouse_setup_runs_and_is_audited(airflow, warehouse_url):
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("drop schema marts cascade")

    airflow_env.dags_test("warehouse_setup", airflow)

    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        assert warehouse.health(warehouse_url)["marts"] == 0
        rows = conn.execute(
            "select actor, action, resource, metadata -> 'tables' ->> 'ops' from ops.audit_log"
        ).fetchall()
    assert rows == [("airflow:warehouse_setup", "warehouse.bootstrapped", "warehouse", "2")]
