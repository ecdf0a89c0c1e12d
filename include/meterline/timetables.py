"""The timetable of a DAG that loads one day partition per run (`ingest_usage_events`).

Airflow's daily data-interval timetable (`CronDataIntervalTimetable("@daily")`) names day D's
scheduled and backfill runs by logical date D: data interval D 00:00 to D+1 00:00, run after D+1.
For a manual run it infers the last complete interval *before* the logical date instead, so a run
triggered for D loads D-1 and sits on the logical date of D's scheduled run; the scheduler then
stops on that date ("run already exists; skipping dagrun creation", computing the next run from
the existing run's interval, which ends there). Here a manual run gets the interval its logical
date falls in, so a manual run for D loads day D and is the run of D, as a scheduled or backfill
run of D is. Scheduling is Airflow's, unchanged.

Registered through the meterline plugin (`plugins/meterline_plugin.py`), as Airflow requires for a
timetable of one's own to be serialized.
"""

from __future__ import annotations

from airflow.timetables.base import DataInterval
from airflow.timetables.interval import CronDataIntervalTimetable
from pendulum import DateTime


class DayPartitionTimetable(CronDataIntervalTimetable):
    """Cron data intervals (daily with `@daily`); a manual run covers the interval holding its
    logical date (without one, the run's start: the day so far)."""

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        start = self._align_to_prev(run_after)
        return DataInterval(start=start, end=self._get_next(start))
