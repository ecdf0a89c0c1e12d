-- WAREHOUSE_ENGINE=spark (include/meterline/spark/handoff.py): per model built on Spark and per
-- partition of its Spark table, the fingerprint of the files last copied into marts, so the
-- next hand-off copies only the partitions Spark rewrote. Written in the copy's transaction.
create table if not exists ops.spark_handoff (
    model           text        not null,
    partition_value text        not null,
    fingerprint     text        not null,
    row_count       bigint      not null,
    handed_at       timestamptz not null default now(),
    primary key (model, partition_value)
);
