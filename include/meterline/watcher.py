"""transform_warehouse's model tasks: one Airflow task per model, saying what the producer's single
`dbt build` did to the model *and* to its tests.

cosmos's watcher mode reports a model on two tasks (`<model>.run`, then `<model>.test`), and
refuses `TestBehavior.BUILD` (its `DbtBuildWatcherOperator` raises). Half the tasks for the same
information cost the nightly run ~0.3 s a task under `airflow dags test` (bench/RESULTS.md), so
here `TestBehavior.BUILD` renders each model (seed, snapshot) through a cosmos node converter as
one `ModelBuildWatcher`:

- it reads the model's status that the producer pushed, then the model's tests' aggregate status
  (cosmos's `<model>_tests_status` XCom): the task fails when either failed, and says which;
- a model dbt skipped because something upstream failed fails (cosmos's rewrite of that skip);
- a model the build did not report although it succeeded (an ephemeral model) succeeds;
- the producer failed before reporting the model: the task fails and points at the producer's
  log (cosmos's deferred path does the same; its poke path instead re-runs each such model);
- cleared or retried once the producer is done, it runs `dbt build --select <model>`: the model
  and its tests, alone.

A test over several models keeps a task of its own after all of them (cosmos's detached tests).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.exceptions import AirflowException
from cosmos.airflow.compatibility import AirflowSkipException
from cosmos.config import RenderConfig
from cosmos.constants import DbtResourceType, TestBehavior
from cosmos.core.airflow import get_airflow_task
from cosmos.dbt.graph import DbtNode
from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
from cosmos.operators._watcher.state import (
    DbtTestStatus,
    ProducerTaskState,
    _log_dbt_event,
    get_dbt_event_xcom_key,
    get_xcom_val,
    is_dbt_node_status_skipped,
    is_dbt_node_status_success,
    is_producer_task_terminated,
)
from cosmos.operators.watcher import DbtConsumerWatcherSensor


class ModelBuildWatcher(DbtConsumerWatcherSensor):
    """A model's build and its tests, as the watcher producer's `dbt build` reported them."""

    # Cleared or retried after the build: the model and its tests, alone (DbtRunMixin's `run`
    # would leave the tests out).
    base_cmd = ["build"]

    def __init__(self, **kwargs: Any) -> None:
        # Polled, not deferred: cosmos's trigger knows one XCom per task, this task reads two. The
        # tasks start once the build is over (transform_warehouse), so the first poke decides.
        kwargs["deferrable"] = False
        super().__init__(**kwargs)
        # Whether the build runs tests of this model (report_tests_the_build_runs).
        self.has_tests = False

    def poke(self, context: Any) -> bool:
        ti = context["ti"]
        producer_state = self._get_producer_task_status(context)
        if ti.try_number > 1 and is_producer_task_terminated(producer_state):
            return self._fallback_to_non_watcher_run(ti.try_number, context)

        status = self._get_node_status(ti, context)
        if status is None:
            if producer_state == ProducerTaskState.FAILED:
                raise AirflowException(
                    f"The dbt build failed before it reported '{self.model_unique_id}': "
                    f"see the log of task '{self.producer_task_id}'"
                )
            if producer_state == ProducerTaskState.SKIPPED:
                return self._fallback_to_non_watcher_run(ti.try_number, context)
            if producer_state == ProducerTaskState.SUCCESS:
                self.log.info("The dbt build did not run '%s' (ephemeral, or empty)", self.model_unique_id)
                return True
            return False

        self._cache_compiled_sql(ti, context)
        _log_dbt_event(get_xcom_val(ti, self.producer_task_id, get_dbt_event_xcom_key(self.model_unique_id)))
        if is_dbt_node_status_skipped(status):
            raise AirflowSkipException(f"'{self.model_unique_id}' was skipped by the dbt build")
        if not is_dbt_node_status_success(status):
            raise AirflowException(
                f"'{self.model_unique_id}' finished with status '{status}': see the log of task "
                f"'{self.producer_task_id}'"
            )
        if not self.has_tests:
            return True

        tests = get_xcom_val(ti, self.producer_task_id, get_tests_status_xcom_key(self.model_unique_id))
        if tests is None:
            if is_producer_task_terminated(producer_state):
                raise AirflowException(
                    f"The dbt build built '{self.model_unique_id}' but did not report all its tests: "
                    f"see the log of task '{self.producer_task_id}'"
                )
            return False
        if tests != DbtTestStatus.PASS:
            raise AirflowException(
                f"A test of '{self.model_unique_id}' failed, so nothing that reads it was built: "
                f"see the log of task '{self.producer_task_id}'"
            )
        self.log.info("'%s' and its tests passed", self.model_unique_id)
        return True


def model_build_task(*, dag, task_group, node: DbtNode, task_args: dict[str, Any], **kwargs: Any):
    """cosmos node converter: the task cosmos renders for `node` under TestBehavior.BUILD, with
    ModelBuildWatcher as its operator."""
    from cosmos.airflow.graph import create_task_metadata

    render = RenderConfig(
        test_behavior=TestBehavior.BUILD,
        normalize_task_id=kwargs.get("normalize_task_id"),
        normalize_task_display_name=kwargs.get("normalize_task_display_name"),
        enable_owner_inheritance=kwargs.get("enable_owner_inheritance", True),
    )
    identifier = "__".join(part for part in (dag.dag_id, task_group.group_id if task_group else None) if part)
    meta = create_task_metadata(
        node=node,
        execution_mode=kwargs["execution_mode"],
        args=task_args,
        dbt_dag_task_group_identifier=identifier,
        render_config=render,
        test_indirect_selection=kwargs["test_indirect_selection"],
        detached_from_parent=kwargs.get("detached_from_parent"),
    )
    if meta.operator_class.endswith(".DbtBuildWatcherOperator"):
        meta = dataclasses.replace(meta, operator_class=f"{ModelBuildWatcher.__module__}.{ModelBuildWatcher.__name__}")
    # else cosmos's own choice, e.g. an EmptyOperator for an ephemeral model
    return get_airflow_task(meta, dag, task_group)


NODE_CONVERTERS = {
    DbtResourceType.MODEL: model_build_task,
    DbtResourceType.SEED: model_build_task,
    DbtResourceType.SNAPSHOT: model_build_task,
}


def report_tests_the_build_runs(group, producer) -> None:
    """Tell the producer which test results make up each task's status, and each model's task
    whether it has tests, so that every task waits only for results the `dbt build` produces:

    - a model's task: its tests over that model alone (dbt runs them right after it);
    - a test over several models (rendered as a task of its own after all of them, cosmos's
      detached test): its own result, when the build runs it. With cautious indirect selection
      it does only when every node it reads is selected; one that also reads a node outside the
      nightly selection (a relationship to the currencies seed) is not run by the build.

    cosmos lists every test that touches a model under that model, so a model would wait for a
    test over several models that the build skips (one of the others failed) or never runs, and
    a detached test's task finds no result of its own (it then runs `dbt test` again itself).
    """
    graph = group.dbt_graph
    selected = {uid for uid, node in graph.filtered_nodes.items() if node.resource_type != DbtResourceType.TEST}
    per_model: dict[str, list[str]] = {}
    for model, tests in graph.tests_per_model.items():
        for test in tests:
            parents = set(graph.nodes[test].depends_on)
            if parents == {model}:
                per_model.setdefault(model, []).append(test)
            elif parents <= selected:
                per_model[test] = [test]
    producer.tests_per_model = per_model
    for task in group.iter_tasks():
        if isinstance(task, ModelBuildWatcher):
            task.has_tests = task.model_unique_id in per_model
