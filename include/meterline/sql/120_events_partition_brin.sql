-- raw.events read one day partition at a time (issue 17). The lake sync (meterline.spark.lake)
-- exports each changed partition with `where partition_date = ...`, and with no index on the
-- column every export scanned the whole table: a month's sync read raw.events once per day, and
-- a nightly sync of one new day read every day before it (paired, a month of 4.65M rows: 26.5 s
-- of exports scanning, 15.2 s through this index; bench/bench_lake_sync.py). The loader writes a partition in one
-- transaction, appended, so a partition's rows sit in adjacent blocks and a BRIN finds them for
-- next to nothing to keep up (as events_timestamp_brin and events_loaded_at_brin do).
create index if not exists events_partition_date_brin on raw.events using brin (partition_date);
