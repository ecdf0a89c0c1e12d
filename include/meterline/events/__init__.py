"""Usage events: the generator of landing-zone dumps, the validator and the day-partition loader.

Dumps land under `LANDING_URL/events/year=YYYY/month=MM/day=DD/` as Parquet or JSON Lines
(optionally gzipped); `meterline.events.load.load_partition` loads one day into `raw.events`.
"""

from __future__ import annotations

from datetime import date

EVENTS_PREFIX = "events"
SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
# Where the generator writes what it did (noise counts, ground truth); outside `events/`, so
# the loader never lists it.
GENERATOR_PREFIX = "_generator/events"


def partition_prefix(day: date) -> str:
    """The landing-zone folder of one day partition."""
    return f"{EVENTS_PREFIX}/year={day.year:04d}/month={day.month:02d}/day={day.day:02d}"
