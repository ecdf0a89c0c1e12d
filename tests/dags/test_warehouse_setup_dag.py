"""The smoke DAG runs end to end in Airflow against a real, fresh warehouse database."""

from __future__ import annotations

import pytest

from meterline import airflow_env, warehouse

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

NOWHERE = "postgresql://nobody@127.0.0.1:9/not_the_warehouse"


def test_warehouse_setup_runs_and_is_audited(airflow, warehouse_url):
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("drop schema marts cascade")

    # Tasks and the listener find the warehouse through the Airflow connection `warehouse`
    # (meterline.connections), not WAREHOUSE_URL: here it points nowhere.
    airflow_env.dags_test("warehouse_setup", airflow | {"WAREHOUSE_URL": NOWHERE})

    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        tables = warehouse.health(warehouse_url)
        rows = conn.execute(
            "select actor, action, resource, metadata -> 'tables' ->> 'ops' from ops.audit_log"
        ).fetchall()
    assert rows == [("airflow:warehouse_setup", "warehouse.bootstrapped", "warehouse", str(tables["ops"]))]

    # The listener plugin recorded the run and each task, with the counts the task returned.
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        runs = conn.execute(
            "select task_id, state, counts from ops.pipeline_runs where dag_id = 'warehouse_setup' order by task_id"
        ).fetchall()
    states = [(task, state) for task, state, _ in runs]
    assert states == [("", "success"), ("bootstrap", "success"), ("check", "success")]
    assert runs[2][2] == tables
