"""
### ingest_usage_events

Loads one day partition of usage-event dumps per run: the files under
`LANDING_URL/events/year=YYYY/month=MM/day=DD/` (Parquet or JSON Lines, gzipped or not; local or
`s3://`) for the run's data interval, into `raw.events`, in one transaction
(`meterline.events.load.load_partition`).

- A file already ingested (same path and sha256, ledger `raw.ingested_files`) is skipped, so any
  run can be repeated and changes nothing.
- An event whose `idempotency_key` was loaded before, from any file or day, is a duplicate and
  counted once (first seen wins).
- Invalid rows go to `raw.events_rejected` with file, line and reason; the rest of the file loads.
  Signatures are checked when `METERING_SIGNING_KEY` is set.
- The task log states files read and skipped, rows read, loaded, duplicates and rejected by
  reason; the task's return value holds the same counts (kept in `ops.pipeline_runs`).
- What a file holds never fails the run: empty files, gzip bombs (bounded by `EVENTS_MAX_FILE_BYTES`
  and `EVENTS_MAX_LINE_BYTES`), oversized or deeply nested lines, stale or zone-less timestamps
  and out-of-range quantities are rejected rows with their reason.
- A file that cannot be opened at all (corrupt Parquet, not gzip, truncated gzip) fails the run
  after the others have loaded, naming it, without retries (its bytes will not change); it is
  not recorded, so a re-delivery is read by the next run. A landing zone that does not answer
  fails the run with retries.

Day D is the run with logical date D (data interval D to D+1, run after D+1), however it is made:
scheduled, backfilled (`airflow backfill create --dag-id ingest_usage_events --from-date
2025-03-01 --to-date 2025-03-31` loads March 1 to 31) or triggered by hand with logical date D.
On success the asset `warehouse://raw/events` is updated, which triggers `transform_warehouse`
(incremental usage models rebuild exactly the touched hours).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from meterline.assets import RAW_EVENTS
from meterline.config import dag_defaults
from meterline.timetables import DayPartitionTimetable


@dag(
    dag_id="ingest_usage_events",
    # Data intervals of one UTC day: the run of 2025-03-04 (logical date 03-04, started just after
    # midnight on the 5th) loads partition day=04, whether scheduled, backfilled or triggered by
    # hand for 03-04 (meterline.timetables) — a cron trigger alone would give an empty interval.
    schedule=DayPartitionTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    # One run per day partition: catching up loads every missed day, oldest first.
    catchup=True,
    max_active_runs=2,
    tags=["meterline", "ingest", "events"],
    default_args=dag_defaults(),
    doc_md=__doc__,
)
def ingest_usage_events():
    @task(outlets=[RAW_EVENTS])
    def load_partition(data_interval_start=None) -> dict[str, int]:
        from meterline.connections import warehouse_conninfo
        from meterline.events.load import load_partition

        # Logs each file's counts, each rejected line (the first few per file) and the summary.
        result = load_partition(data_interval_start.date(), conninfo=warehouse_conninfo())
        if result.unreadable:
            message = f"unreadable event files in {result.day}: {'; '.join(result.unreadable)}"
            if result.retryable:  # the landing zone failed: a retry may read them
                raise RuntimeError(message)
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(message)  # what a file holds does not change on a retry
        return result.counts()

    load_partition()


ingest_usage_events()
