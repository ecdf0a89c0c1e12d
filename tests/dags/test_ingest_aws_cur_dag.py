"""ingest_aws_cur runs in Airflow: loads every new delivery in order and logs what it did."""

from __future__ import annotations

from datetime import date

import pytest

from meterline import airflow_env, warehouse
from meterline.landing import Zone
from meterline.synthetic import cur as gen

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_ingest_aws_cur_loads_new_deliveries_then_skips(airflow, warehouse_url, tmp_path):
    landing = tmp_path / "landing"
    months = gen.generate(Zone(str(landing)), start=date(2025, 3, 1), months=2, rows=300, deliveries=2)
    env = {**airflow, "LANDING_URL": str(landing)}

    done = airflow_env.dags_test("ingest_aws_cur", env)

    output = done.stdout + done.stderr
    assert "CUR deliveries: 4 found, 2 loaded, 2 skipped, 0 waiting, 0 failed" in output
    assert f"period 2025-03: 300 rows, unblended {months[0].decimal('unblended')}" in output
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        totals = conn.execute(
            "select billing_period, count(*), sum(line_item_unblended_cost)"
            " from raw.cur_line_items group by 1 order by 1"
        ).fetchall()
    assert totals == [
        (date(2025, 3, 1), 300, months[0].decimal("unblended")),
        (date(2025, 4, 1), 300, months[1].decimal("unblended")),
    ]

    # Nothing new: the load task skips (no asset event, transform_warehouse is not triggered) and
    # the run succeeds. A failing delivery is covered by tests/integration/cur (Airflow would wait
    # out the retry delays here).
    again = airflow_env.dags_test("ingest_aws_cur", env)
    assert "CUR deliveries: 4 found, 0 loaded, 4 skipped, 0 waiting, 0 failed" in again.stdout + again.stderr
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        assert conn.execute("select count(*) from raw.cur_deliveries").fetchone()[0] == 4
