"""Run several DAG runs through Airflow in one process: `python -m meterline.dagrun PLAN.json`.

Each run is `dag.test()`, exactly what `airflow dags test` does, but Airflow starts and parses
the DAG folder once instead of once per run, which turns a month of daily partitions from
minutes of start-up into seconds. The plan is a JSON list of
`{"dag_id": ..., "logical_date": "2025-03-01T00:00:00+00:00", "conf": {...}}`; runs go in
order and the first failed run stops the plan (exit 1). One line per run is printed:
`RUN <dag_id> <logical_date> <state> <seconds>`.

Use it through `meterline.airflow_env.run_plan()`, which sets Airflow's environment first.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(plan_path: str) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import timezone

    from meterline.config import project_root

    plan = json.loads(Path(plan_path).read_text())
    bag = DagBag(dag_folder=str(project_root() / "dags"))
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 2
    for item in plan:
        dag = bag.dags[item["dag_id"]]
        logical_date = timezone.parse(item["logical_date"]) if item.get("logical_date") else timezone.utcnow()
        started = time.monotonic()
        run = dag.test(logical_date=logical_date, run_conf=item.get("conf"))
        state = str(getattr(run.state, "value", run.state))
        print(f"RUN {item['dag_id']} {logical_date.isoformat()} {state} {time.monotonic() - started:.1f}", flush=True)
        if state != "success":
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
