"""fact_cost_raw is incremental: a period is replaced whole when its live delivery changes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from meterline import transform
from meterline.cur.load import run
from meterline.landing import Zone
from meterline.synthetic import cur as gen

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARCH, APRIL = date(2025, 3, 1), date(2025, 4, 1)
MODELS = ["run", "--select", "stg_cur__line_items", "stg_cur__deliveries", "fact_cost_raw"]


def _facts(db) -> list[tuple]:
    return db.execute(
        "select billing_period, delivery_id, count(*), count(distinct line_seq), sum(unblended_cost),"
        " sum(billed_cost), sum(amortized_cost), count(resource_tags_user_tenant_id)"
        " from marts.fact_cost_raw group by 1, 2 order by 1"
    ).fetchall()


def _expected(m: gen.Month, delivery_id: int) -> tuple:
    return (
        m.period,
        delivery_id,
        m.table.num_rows,
        m.table.num_rows,
        m.decimal("unblended"),
        m.decimal("billed"),
        m.decimal("amortized"),
        int((m.truth["tenant"] != "").sum()),
    )


def test_a_new_delivery_replaces_its_period_and_a_rerun_changes_nothing(db, warehouse_url, tmp_path):
    zone = Zone(str(tmp_path))
    march, april = gen.month(MARCH, 700, seed=9), gen.month(APRIL, 500, seed=9)
    first = gen.restatement(march, 1, 2, final=False)
    gen.write_cur2(zone, first, MARCH, datetime(2025, 3, 16, tzinfo=UTC))
    gen.write_cur2(zone, gen.restatement(april, 1, 1, final=True), APRIL, datetime(2025, 5, 2, tzinfo=UTC))
    run(warehouse_url, str(tmp_path))
    transform.run(MODELS, warehouse_url, capture_output=True)
    facts = _facts(db)
    assert facts[0][:4] == (MARCH, 1, first.num_rows, first.num_rows)
    assert facts[1] == _expected(april, 2)

    gen.write_cur2(zone, gen.restatement(march, 2, 2, final=True), MARCH, datetime(2025, 4, 2, tzinfo=UTC))
    run(warehouse_url, str(tmp_path))
    transform.run(MODELS, warehouse_url, capture_output=True)

    # Billed and amortised cost by the line-type rules equal the generator's truth to the cent
    # (exactly: the truth is in 1e-8 USD).
    assert _facts(db) == [_expected(march, 3), _expected(april, 2)]
    assert db.execute("select bool_and(is_final) from marts.fact_cost_raw").fetchone()[0] is True

    transform.run(MODELS, warehouse_url, capture_output=True)
    assert _facts(db) == [_expected(march, 3), _expected(april, 2)]
    amortized_rules = dict(
        db.execute(
            "select line_item_line_item_type, sum(amortized_cost) from marts.fact_cost_raw"
            " where line_item_line_item_type in ('SavingsPlanNegation', 'DiscountedUsage') group by 1"
        ).fetchall()
    )
    assert amortized_rules["SavingsPlanNegation"] == Decimal(0)
    discounted = march.truth["kind"] == "DiscountedUsage"
    april_discounted = april.truth["kind"] == "DiscountedUsage"
    assert amortized_rules["DiscountedUsage"] == march.decimal("amortized", discounted) + april.decimal(
        "amortized", april_discounted
    )


PERIODS = [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]
PER_PERIOD_MODELS = [
    "build", "--select", "stg_cur__line_items", "stg_cur__deliveries", "fact_cost_raw",
    "--indirect-selection", "cautious",
]  # fmt: skip


def _periods(db) -> dict[date, tuple]:
    """Per period of fact_cost_raw: delivery, rows, billed cost, and the transactions that wrote
    its rows (xmin: the same set when no row of the period was touched)."""
    rows = db.execute(
        "select billing_period, min(delivery_id), count(*), sum(billed_cost),"
        " array_agg(distinct xmin::text order by xmin::text) from marts.fact_cost_raw group by 1"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_a_rebuild_touches_only_the_periods_whose_delivery_changed(db, warehouse_url, tmp_path):
    zone = Zone(str(tmp_path))
    months = {p: gen.month(p, 400, seed=11) for p in PERIODS}
    for p, m in months.items():
        gen.write_cur2(zone, gen.restatement(m, 1, 1, final=True), p, datetime(p.year, p.month + 1, 2, tzinfo=UTC))
    run(warehouse_url, str(tmp_path))
    transform.run(PER_PERIOD_MODELS, warehouse_url, capture_output=True)
    built = _periods(db)
    for p, m in months.items():
        assert built[p][1:3] == (400, m.decimal("billed"))

    # Nothing delivered since: no row of any period is rewritten.
    transform.run(PER_PERIOD_MODELS, warehouse_url, capture_output=True)
    assert _periods(db) == built

    # February restated (a later final delivery with other lines): only February is rebuilt.
    february = gen.month(PERIODS[1], 300, seed=12)
    gen.write_cur2(zone, gen.restatement(february, 1, 1, final=True), PERIODS[1], datetime(2025, 3, 20, tzinfo=UTC))
    run(warehouse_url, str(tmp_path))
    transform.run(PER_PERIOD_MODELS, warehouse_url, capture_output=True)
    after = _periods(db)
    assert {p: v for p, v in after.items() if p != PERIODS[1]} == {p: v for p, v in built.items() if p != PERIODS[1]}
    assert after[PERIODS[1]][0] != built[PERIODS[1]][0]  # the new delivery
    assert after[PERIODS[1]][1:3] == (300, february.decimal("billed"))
    assert set(after[PERIODS[1]][3]).isdisjoint(built[PERIODS[1]][3])


def test_a_build_tests_the_periods_it_derived_and_dbt_test_every_period(db, warehouse_url, tmp_path):
    zone = Zone(str(tmp_path))
    for p in PERIODS[:2]:
        month = gen.restatement(gen.month(p, 200, seed=13), 1, 1, final=True)
        gen.write_cur2(zone, month, p, datetime(2025, 4, 2, tzinfo=UTC))
    run(warehouse_url, str(tmp_path))
    transform.run(PER_PERIOD_MODELS, warehouse_url, capture_output=True)
    # A January row broken by hand after it was built and tested (no delivery changed).
    db.execute(
        "update marts.fact_cost_raw set billed_cost = null"
        " where billing_period = %s and line_seq = (select min(line_seq) from marts.fact_cost_raw)",
        [PERIODS[0]],
    )
    # A build derives no period, so its tests of fact_cost_raw read no period ...
    transform.run(PER_PERIOD_MODELS, warehouse_url, capture_output=True)
    # ... while `dbt test` reads every period and finds the row.
    with pytest.raises(transform.ChecksFailed, match=r"not_null_fact_cost_raw_billed_cost: 1 failing rows"):
        transform.run(
            ["test", "--select", "fact_cost_raw", "--indirect-selection", "cautious"],
            warehouse_url,
            capture_output=True,
        )
