"""sync_billing_catalog loads the export and snapshots it, through a real Airflow run."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from meterline import airflow_env
from meterline.catalog.load import load_catalog, snapshot_catalog
from meterline.synthetic.catalog import generate_catalog

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_sync_loads_the_export_and_snapshots_a_price_change(airflow, db, warehouse_url, tmp_path):
    generate_catalog(str(tmp_path), period=date(2026, 10, 1))
    airflow_env.dags_test("sync_billing_catalog", dict(airflow, LANDING_URL=str(tmp_path)))
    assert db.execute("select count(*) from raw.catalog_plans").fetchone()[0] == 15
    assert db.execute("select count(*) from staging.snap_catalog__plans").fetchone()[0] == 15
    assert db.execute("select action from ops.audit_log").fetchall() == [("catalog.loaded",)]

    # Finance raises a fee; the next sync (its two tasks' functions, without a second Airflow run)
    # closes the old version and opens the new one.
    plans = tmp_path / "catalog" / "plans.csv"
    plans.write_text(
        plans.read_text().replace("starter-usd,Starter (USD),USD,29.00", "starter-usd,Starter (USD),USD,35.00")
    )
    load_catalog(warehouse_url, str(tmp_path))
    snapshot_catalog(warehouse_url)
    versions = db.execute(
        "select monthly_base_fee, dbt_valid_to is null from staging.snap_catalog__plans"
        " where plan_id = 'starter-usd' order by dbt_valid_from"
    ).fetchall()
    assert versions == [(Decimal("29.00"), False), (Decimal("35.00"), True)]
    assert db.execute("select count(*) from staging.snap_catalog__plans").fetchone()[0] == 16
