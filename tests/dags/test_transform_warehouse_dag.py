"""transform_warehouse renders dbt models as Airflow tasks (cosmos, watcher mode): one `dbt build`
of the selection, and per model a task for its build and one for its tests, reporting what that
build did. The end-to-end month (test_monthly_close_end_to_end) runs it against a real warehouse."""

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
    dag = _dag()
    task_ids = set(dag.task_ids)
    producer = dag.get_task("dbt.dbt_producer_watcher")
    # One dbt process builds the whole nightly selection, tests included.
    assert producer.base_cmd == ["build"] and producer.retries == 0
    models = ("stg_events__usage_events", "usage_hourly", "fact_cost_raw", "recon_summary")
    assert {f"dbt.{m}.{kind}" for m in models for kind in ("run", "test")} <= task_ids
    # dbt's lineage becomes task order: a model reports after the tests of what it reads
    assert "dbt.stg_events__usage_events.test" in dag.get_task("dbt.usage_hourly.run").upstream_task_ids
    # the first models report once the build is over, whatever its outcome
    first = dag.get_task("dbt.stg_events__usage_events.run")
    assert first.upstream_task_ids == {producer.task_id} and first.trigger_rule == "all_done"
    invoice_marts = {"dbt.invoice_header.run", "dbt.invoice_draft_lines.run"}
    assert not invoice_marts & task_ids, "invoices are built by close_billing_period"


def test_on_spark_the_heavy_models_are_one_task_before_the_dbt_tasks(dbt_manifest, monkeypatch):
    """WAREHOUSE_ENGINE=spark: the heavy models (tag heavy) are built by spark_heavy_models, which
    hands them to marts before any dbt task runs; the dbt tasks leave them out."""
    from airflow.dag_processing.dagbag import DagBag

    from meterline.config import project_root

    monkeypatch.setenv("WAREHOUSE_ENGINE", "spark")
    dag = DagBag(dag_folder=str(project_root() / "dags" / "transform_warehouse.py")).dags["transform_warehouse"]
    task_ids = set(dag.task_ids)
    assert "spark_heavy_models" in task_ids
    assert not {"dbt.usage_hourly.run", "dbt.usage_metered_hourly.run", "dbt.fact_cost_raw.run"} & task_ids
    assert "dbt.usage_daily.run" in task_ids
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
    assert states["dbt.stg_catalog__metrics.run"] == "success"
    assert states["dbt.stg_catalog__metrics.test"] == "failed"
    # what reads the metrics is not built...
    for model in ("usage_metered_hourly", "usage_snapshot_daily", "fact_cost_allocated", "recon_summary"):
        assert states[f"dbt.{model}.run"] == "upstream_failed", model
        (built,) = db.execute("select to_regclass(%s) is not null", [f"marts.{model}"]).fetchone()
        assert not built, model
    # ...and what does not is, and says so
    for model in ("usage_hourly", "fact_cost_raw"):
        assert (states[f"dbt.{model}.run"], states[f"dbt.{model}.test"]) == ("success", "success"), model
        (built,) = db.execute("select to_regclass(%s) is not null", [f"marts.{model}"]).fetchone()
        assert built, model
