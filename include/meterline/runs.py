"""`ops.pipeline_runs`: what each DAG run and task did, recorded by the listener plugin.

A task's counts are its return value when that is a flat mapping of names to numbers (the
loaders return `{"files_read": 3, "rows_loaded": 1200, ...}`), so an operator can ask the
warehouse what last night's run loaded without opening task logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from numbers import Number
from typing import Any

from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    dag_id: str
    run_id: str
    state: str
    task_id: str = ""
    map_index: int = -1
    try_number: int | None = None
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def counts_of(value: Any) -> dict[str, Any]:
    """The numbers in a task's return value; anything else is not a count and is left out."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, Number) and not isinstance(v, bool)}


def record(conninfo: str, rec: RunRecord) -> None:
    from meterline import warehouse

    with warehouse.connect(conninfo) as conn:
        conn.execute(
            """
            insert into ops.pipeline_runs as p (dag_id, run_id, task_id, map_index, state, try_number,
                logical_date, data_interval_start, data_interval_end, started_at, ended_at, counts, error)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (dag_id, run_id, task_id, map_index) do update set
                state = excluded.state, try_number = excluded.try_number,
                started_at = coalesce(p.started_at, excluded.started_at), ended_at = excluded.ended_at,
                counts = excluded.counts, error = excluded.error, recorded_at = now()
            """,
            [
                rec.dag_id, rec.run_id, rec.task_id, rec.map_index, rec.state, rec.try_number,
                rec.logical_date, rec.data_interval_start, rec.data_interval_end, rec.started_at,
                rec.ended_at, Jsonb(rec.counts), rec.error,
            ],
        )  # fmt: skip


def record_safely(rec: RunRecord) -> None:
    """Recording must never fail the run it records: a warehouse outage, or no Airflow connection
    `warehouse` to find it by, is logged, not raised."""
    from meterline.connections import warehouse_conninfo

    try:
        conninfo = warehouse_conninfo()
    except Exception as exc:  # see docstring
        log.warning("no warehouse connection: run of %s not recorded in ops.pipeline_runs: %s", rec.dag_id, exc)
        return
    try:
        record(conninfo, rec)
    except Exception as exc:  # see docstring
        log.warning("could not record %s/%s in ops.pipeline_runs: %s", rec.dag_id, rec.task_id or "-", exc)
