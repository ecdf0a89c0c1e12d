"""
### warehouse_setup

Creates or upgrades the warehouse: schemas `raw`, `staging`, `intermediate`, `marts`, `billing`,
`ops`, the roles `meterline_pipeline`, `meterline_analyst` and `meterline_operator`, and the
ledger tables. Idempotent: run it after every deployment, or whenever a check says a schema is
missing. Each run records what it applied in `ops.audit_log` (`warehouse.bootstrapped`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from meterline.config import dag_defaults


@dag(
    dag_id="warehouse_setup",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["meterline", "ops"],
    default_args=dag_defaults(),
    doc_md=__doc__,
)
def warehouse_setup():
    @task
    def bootstrap() -> list[str]:
        from meterline import warehouse
        from meterline.connections import warehouse_conninfo

        return warehouse.bootstrap(warehouse_conninfo())

    @task
    def check(applied: list[str]) -> dict[str, int]:
        from meterline import audit, warehouse
        from meterline.connections import warehouse_conninfo

        conninfo = warehouse_conninfo()
        tables = warehouse.health(conninfo)
        with warehouse.transaction(conninfo) as conn:
            audit.record(
                conn,
                actor="airflow:warehouse_setup",
                action="warehouse.bootstrapped",
                resource="warehouse",
                metadata={"applied": applied, "tables": tables},
            )
        return tables

    check(bootstrap())


warehouse_setup()
