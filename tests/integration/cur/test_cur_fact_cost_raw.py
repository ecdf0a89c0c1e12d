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
