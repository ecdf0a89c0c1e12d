"""transform_warehouse renders dbt models as Airflow tasks (cosmos). The end-to-end month
(test_monthly_close_end_to_end) runs it against a real warehouse."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dags


def test_nightly_selection_renders_one_build_task_per_model(dbt_manifest):
    from airflow.dag_processing.dagbag import DagBag

    from meterline.config import project_root

    dag = DagBag(dag_folder=str(project_root() / "dags" / "transform_warehouse.py")).dags["transform_warehouse"]
    task_ids = set(dag.task_ids)
    expected = {
        f"dbt.{m}_model_build" for m in ("stg_events__usage_events", "usage_hourly", "fact_cost_raw", "recon_summary")
    }
    assert expected <= task_ids
    # dbt's lineage becomes task order: a model builds (and is tested) only after what it reads
    assert "dbt.stg_events__usage_events_model_build" in dag.get_task("dbt.usage_hourly_model_build").upstream_task_ids
    invoice_marts = {"dbt.invoice_header_model_build", "dbt.invoice_draft_lines_model_build"}
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
    assert not {"dbt.usage_hourly_model_build", "dbt.usage_metered_hourly_model_build"} & task_ids
    assert "dbt.usage_daily_model_build" in task_ids
    assert dag.get_task("spark_heavy_models").downstream_task_ids
    roots = {t.task_id for t in dag.roots}
    assert roots == {"spark_heavy_models"}
