"""transform_warehouse renders dbt models as Airflow tasks (cosmos, watcher mode): one `dbt build`
of the selection, and per model one task reporting what that build did to the model and to its
tests (meterline.watcher). The end-to-end month (test_monthly_close_end_to_end) runs it against a
real warehouse."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from meterline import airflow_env

pytestmark = pytest.mark.dags


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    from meterline.config import project_root

    return DagBag(dag_folder=str(project_root() / "dags" / "transform_warehouse.py")).dags["transform_warehouse"]


def test_nightly_selection_renders_one_build_and_a_task_per_model(dbt_manifest):
    from meterline.watcher import ModelBuildWatcher

    dag = _dag()
    task_ids = set(dag.task_ids)
    producer = dag.get_task("dbt.dbt_producer_watcher")
    # One dbt process builds the whole nightly selection, tests included.
    assert producer.base_cmd == ["build"] and producer.retries == 0
    models = ("stg_events__usage_events", "usage_hourly", "fact_cost_raw", "recon_summary")
    for model in models:
        task = dag.get_task(f"dbt.{model}_model_build")
        # one task for the model and its tests; cleared, it builds and tests that model alone
        assert isinstance(task, ModelBuildWatcher) and task.has_tests and task.base_cmd == ["build"], model
    assert not {t for t in task_ids if t.endswith((".run", ".test"))}, "no separate run and test tasks"
    # dbt's lineage becomes task order: a model reports after what it reads (and its tests)
    upstream = dag.get_task("dbt.usage_hourly_model_build").upstream_task_ids
    assert upstream == {"dbt.stg_events__usage_events_model_build"}
    # the first models report once the build is over, whatever its outcome
    first = dag.get_task("dbt.stg_events__usage_events_model_build")
    assert first.upstream_task_ids == {producer.task_id} and first.trigger_rule == "all_done"
    invoice_marts = {"dbt.invoice_header_model_build", "dbt.invoice_draft_lines_model_build"}
    assert not invoice_marts & task_ids, "invoices are built by close_billing_period"
    # Each task waits for results the build gives: a model's task for its tests over it alone, a
    # test over two models (a task of its own) for its own result, and nothing for a test the
    # build does not run (a relationship to the currencies seed, outside the nightly selection).
    waits = producer.tests_per_model
    tenants = waits["model.meterline.stg_catalog__tenants"]
    assert tenants and not [t for t in tenants if t.startswith("test.meterline.relationships_")]
    relationships = {t for t in waits if t.startswith("test.meterline.relationships_")}
    assert relationships and all(waits[t] == [t] for t in relationships)
    assert not [t for t in relationships if "ref_currencies" in t]


def test_on_spark_the_heavy_models_are_one_task_before_the_dbt_tasks(dbt_manifest, monkeypatch):
    """WAREHOUSE_ENGINE=spark: the heavy models (tag heavy) are built by spark_heavy_models, which
    hands them to marts before any dbt task runs; the dbt tasks leave them out."""
    from airflow.dag_processing.dagbag import DagBag

    from meterline.config import project_root

    monkeypatch.setenv("WAREHOUSE_ENGINE", "spark")
    dag = DagBag(dag_folder=str(project_root() / "dags" / "transform_warehouse.py")).dags["transform_warehouse"]
    task_ids = set(dag.task_ids)
    assert "spark_heavy_models" in task_ids
    heavy = {"dbt.usage_hourly_model_build", "dbt.usage_metered_hourly_model_build", "dbt.fact_cost_raw_model_build"}
    assert not heavy & task_ids
    assert "dbt.usage_daily_model_build" in task_ids
    assert dag.get_task("spark_heavy_models").downstream_task_ids == {"dbt.dbt_producer_watcher"}
    roots = {t.task_id for t in dag.roots}
    assert roots == {"spark_heavy_models"}


def _task_states(airflow_home: str, logical_date: str) -> dict[str, str]:
    query = (
        "select ti.task_id, ti.state from task_instance ti join dag_run r"
        " on r.dag_id = ti.dag_id and r.run_id = ti.run_id"
        " where r.dag_id = 'transform_warehouse' and r.logical_date like ?"
    )
    with sqlite3.connect(Path(airflow_home) / "airflow.db") as conn:
        return dict(conn.execute(query, [f"{logical_date[:10]} {logical_date[11:19]}%"]).fetchall())


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_failing_dbt_test_stops_what_reads_the_model_and_fails_the_run(airflow, db):
    """A catalog metric with an aggregation the contract does not know fails a test of
    stg_catalog__metrics: what reads it is not built, the rest is, and the run fails."""
    db.execute(
        "insert into raw.catalog_metrics (metric_code, event_type, aggregation, property, unit, source_file)"
        " values ('mystery_metric', 'mystery_event', 'median', null, 'unit', 'hand-written.csv')"
    )
    logical_date = "2026-09-15T04:00:00+00:00"
    with pytest.raises(RuntimeError, match="'failed'"):
        # dbt's profile comes from the Airflow connection `warehouse` (cosmos's profile mapping),
        # not from WAREHOUSE_URL: here it points nowhere.
        nowhere = {"WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:9/not_the_warehouse"}
        airflow_env.run_plan([{"dag_id": "transform_warehouse", "logical_date": logical_date}], airflow | nowhere)

    states = _task_states(airflow["AIRFLOW_HOME"], logical_date)
    assert states["dbt.dbt_producer_watcher"] == "failed"
    # the model was built, its test failed: its task fails
    assert states["dbt.stg_catalog__metrics_model_build"] == "failed"
    # what reads the metrics is not built...
    for model in ("usage_metered_hourly", "usage_snapshot_daily", "fact_cost_allocated", "recon_summary"):
        assert states[f"dbt.{model}_model_build"] == "upstream_failed", model
        (built,) = db.execute("select to_regclass(%s) is not null", [f"marts.{model}"]).fetchone()
        assert not built, model
    # ...and what does not is, and says so
    for model in ("usage_hourly", "fact_cost_raw"):
        assert states[f"dbt.{model}_model_build"] == "success", model
        (built,) = db.execute("select to_regclass(%s) is not null", [f"marts.{model}"]).fetchone()
        assert built, model
