"""
### transform_warehouse

Builds the warehouse's usage and cost models with dbt, through astronomer-cosmos in its watcher
mode: one task (`dbt.dbt_producer_watcher`) runs a single `dbt build` of the selection, each
model's tests right after it, so a failing test stops everything downstream of it (and no
invoice is built on a bad `usage_hourly`); each model keeps one task (`dbt.<model>_model_build`)
showing what that build did to the model and to its tests, a test over several models one of its
own, and a model downstream of a failure shows `upstream_failed`. Clearing a model's task builds
and tests that model alone.

Runs when an ingest DAG updates raw events, CUR or the catalog (nightly in practice). Invoices,
reconciliation for a period and emission belong to `close_billing_period`.

Tasks are rendered from the dbt manifest (`dbt parse`, run by `meterline airflow`, the demo and
docker-compose's `airflow-init` when the project changed), so the DAG processor never runs dbt.
dbt reaches the warehouse through the Airflow connection `warehouse` (cosmos maps it to the
profile's `warehouse` target; `meterline.connections`).

With `WAREHOUSE_ENGINE=spark` the heavy models (dbt tag `heavy`: usage_hourly,
usage_metered_hourly) are one task, `spark_heavy_models`, which builds them on the Spark cluster
and hands them to PostgreSQL's marts (meterline.spark.engine.build, docs/spark.md); the dbt tasks
then build everything else on PostgreSQL, after it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.task.trigger_rule import TriggerRule
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
    TestIndirectSelection,
)
from cosmos.constants import PRODUCER_WATCHER_TASK_ID

from meterline.assets import MARTS, RAW_CATALOG, RAW_CUR, RAW_EVENTS
from meterline.config import dag_defaults
from meterline.connections import dbt_profile
from meterline.spark.engine import HEAVY, engine
from meterline.transform import NIGHTLY_SELECTION, dbt_executable, manifest_path, project_dir
from meterline.watcher import NODE_CONVERTERS, report_tests_the_build_runs


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
    group = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path=project_dir(), manifest_path=manifest_path()),
        # dbt's profile from the Airflow connection `warehouse` (meterline.connections).
        profile_config=dbt_profile(),
        # BUILD: one task per model for the model and its tests (meterline.watcher, through cosmos's
        # node converters: cosmos's own watcher operator refuses BUILD); the producer's `dbt build`
        # runs a model's tests right after it, so a failing test stops everything downstream of it
        # (dbt skips what reads the model), and those models' tasks fail.
        # emit_datasets off: cosmos would declare one `postgres://host/...` asset per model, which
        # a socket-path host (the embedded warehouse) cannot express; we declare warehouse://marts.
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=NIGHTLY_SELECTION,
            exclude=[HEAVY] if on_spark else [],
            test_behavior=TestBehavior.BUILD,
            node_converters=NODE_CONVERTERS,
            # A test over two models (relationships, totals checks) gets its own task after both.
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,
        ),
        # WATCHER: one `dbt build` of the whole selection (one start-up, one parse, dbt's threads)
        # in a producer task; each model keeps its task, which takes that model's outcome (and its
        # tests') from the build. Tests whose parents are not all in a model's task run after both.
        # The producer does not retry: cosmos refuses a second build and skips, which would let
        # the run end "success" without building. A model's task retried builds that model alone.
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            # dbt in its own process: in-process (dbtRunner) cosmos serialises every dbt event in a
            # callback on dbt's threads, which made the build 2.5x slower (bench/RESULTS.md).
            invocation_mode=InvocationMode.SUBPROCESS,
            dbt_executable_path=dbt_executable(),
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
            setup_operator_args={"retries": 0},
        ),
        operator_args={"install_deps": False, "outlets": [MARTS]},
        default_args=dag_defaults(),
    )
    # In a task group (unlike a DbtDag) cosmos leaves the first models' tasks unordered against
    # the build they report on: one could start, wait and hold the only slot (as in `airflow dags
    # test`, one task at a time). They start once the build is done, whatever its outcome, and
    # each reports its own model's; the tasks after them keep dbt's lineage (all_success), so a
    # model downstream of a failed one or of a failed test shows upstream_failed.
    producer = group.children[f"{group.group_id}.{PRODUCER_WATCHER_TASK_ID}"]
    report_tests_the_build_runs(group, producer)
    for node in list(group.iter_tasks()):
        if node is not producer and not node.upstream_task_ids:
            producer >> node
            node.trigger_rule = TriggerRule.ALL_DONE
    if on_spark:

        @task
        def spark_heavy_models() -> dict:
            from meterline.connections import warehouse_conninfo
            from meterline.spark import engine as spark_engine

            return spark_engine.build(warehouse_conninfo())

        # Before the build only: the models' tasks report on the build and follow it.
        spark_heavy_models() >> producer


transform_warehouse()
