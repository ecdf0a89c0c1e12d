"""
### transform_warehouse

Builds the warehouse's usage and cost models with dbt, through astronomer-cosmos: one Airflow
task per model, which builds the model and then runs its tests (`dbt build`), so a failing test
stops everything downstream of it (and no invoice is built on a bad `usage_hourly`).

Runs when an ingest DAG updates raw events, CUR or the catalog (nightly in practice). Invoices,
reconciliation for a period and emission belong to `close_billing_period`.

Tasks are rendered from the dbt manifest (`dbt parse`, run by `meterline airflow` and the demo
when the project changed), so the DAG processor never runs dbt.

With `WAREHOUSE_ENGINE=spark` the heavy models (dbt tag `heavy`: usage_hourly,
usage_metered_hourly) are one task, `spark_heavy_models`, which builds them on the Spark cluster
and hands them to PostgreSQL's marts (meterline.spark.engine.build, docs/spark.md); the dbt tasks
then build everything else on PostgreSQL, after it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    LoadMode,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
    TestIndirectSelection,
)

from meterline.assets import MARTS, RAW_CATALOG, RAW_CUR, RAW_EVENTS
from meterline.config import dag_defaults
from meterline.spark.engine import HEAVY, engine
from meterline.transform import dbt_executable, manifest_path, project_dir

NIGHTLY_SELECTION = [
    "path:models/staging",
    "path:models/marts/usage",
    "path:models/intermediate/cost",
    "path:models/marts/cost",
]


@dag(
    dag_id="transform_warehouse",
    schedule=(RAW_EVENTS | RAW_CUR | RAW_CATALOG),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["meterline", "dbt", "nightly"],
    default_args=dag_defaults(),
    doc_md=__doc__,
)
def transform_warehouse():
    on_spark = engine() == "spark"
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path=project_dir(), manifest_path=manifest_path()),
        profile_config=ProfileConfig(
            profile_name="meterline", target_name="warehouse", profiles_yml_filepath=project_dir() / "profiles.yml"
        ),
        # BUILD: each model's task is `dbt build` of that model, which runs its tests right after
        # it; a failing test fails the task, so nothing downstream is built on bad data.
        # emit_datasets off: cosmos would declare one `postgres://host/...` asset per model, which
        # a socket-path host (the embedded warehouse) cannot express; we declare warehouse://marts.
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=NIGHTLY_SELECTION,
            exclude=[HEAVY] if on_spark else [],
            test_behavior=TestBehavior.BUILD,
            # A test over two models (relationships, totals checks) gets its own task after both.
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,
        ),
        # ...and a model's own task runs only the tests whose parents are all built by then.
        execution_config=ExecutionConfig(
            dbt_executable_path=dbt_executable(), test_indirect_selection=TestIndirectSelection.CAUTIOUS
        ),
        operator_args={"install_deps": False, "outlets": [MARTS]},
        default_args=dag_defaults(),
    )
    if on_spark:

        @task
        def spark_heavy_models() -> dict:
            from meterline import warehouse
            from meterline.spark import engine as spark_engine

            return spark_engine.build(warehouse.url())

        spark_heavy_models() >> dbt


transform_warehouse()
