"""
### sync_billing_catalog

Loads finance's billing catalog export from `LANDING_URL/catalog/` (CSV files, format in
`docs/catalog.md`; local or `s3://`) into `raw.catalog_*`, then records its history with dbt
snapshots, so a past month is always priced with the catalog as it was at that month's close.

- The export is validated first (`meterline.catalog.load.load_catalog`): an unknown plan, tenant,
  metric or currency, overlapping tiers or tax validity, overlapping subscription rows, a
  negative price or an unknown enum refuses the whole export. The task fails listing every
  problem by file, line and field, and the warehouse keeps the previous catalog.
- A valid export replaces each entity in one transaction and writes `catalog.loaded` to
  `ops.audit_log` with the row counts and file checksums.
- Then `dbt build` of the catalog staging views and snapshots (`snap_catalog__*`): a changed row
  closes its version and opens a new one; a row gone from the export is closed.

Re-running is safe: the same export loads the same rows, and the snapshots record no change. On
success the asset `warehouse://raw/catalog` is updated, which triggers `transform_warehouse`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from meterline.assets import RAW_CATALOG
from meterline.config import dag_defaults


@dag(
    dag_id="sync_billing_catalog",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    # Each export is complete: only the latest matters, so missed days are not replayed.
    catchup=False,
    max_active_runs=1,
    tags=["meterline", "ingest", "catalog", "billing"],
    default_args=dag_defaults(),
    doc_md=__doc__,
)
def sync_billing_catalog():
    @task
    def load_catalog() -> dict[str, int]:
        import logging

        from meterline.catalog.load import load_catalog
        from meterline.connections import warehouse_conninfo

        result = load_catalog(warehouse_conninfo())
        logging.getLogger("airflow.task").info("catalog loaded from %s: %s", result.source, result.row_counts)
        return result.row_counts

    @task(outlets=[RAW_CATALOG])
    def snapshot_catalog() -> None:
        from meterline.catalog.load import snapshot_catalog
        from meterline.connections import warehouse_conninfo

        snapshot_catalog(warehouse_conninfo())

    load_catalog() >> snapshot_catalog()


sync_billing_catalog()
