"""WAREHOUSE_ENGINE=spark: the heavy models on an Apache Spark cluster, billing on PostgreSQL.

`cluster` starts a local standalone cluster from the pyspark wheel; `lake` writes the raw rows the
heavy models read as Parquet tables Spark sees; `handoff` copies the heavy models' outputs into
PostgreSQL's `marts`. docs/spark.md explains the split.
"""
