"""The CUR generator's `cost_divisor` (the demo's knob for a cloud bill in proportion to revenue):
the same lines, every price divided, exact in 1e-8 USD; 1 is the generator the tests know."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from meterline.synthetic.cur import month

pytestmark = pytest.mark.unit

PERIOD = date(2026, 10, 1)


def test_divisor_one_is_the_default_generator():
    default, one = month(PERIOD, 2_000, tenants=6), month(PERIOD, 2_000, tenants=6, cost_divisor=1)
    assert default.table.equals(one.table)


def test_divided_prices_keep_the_lines_and_scale_the_bill():
    full, cheap = month(PERIOD, 2_000, tenants=6), month(PERIOD, 2_000, tenants=6, cost_divisor=30)
    # Same lines: ids, tenants, services, kinds and usage amounts.
    for column in ("identity_line_item_id", "line_item_line_item_type", "line_item_product_code",
                   "line_item_usage_amount", "resource_tags"):  # fmt: skip
        assert cheap.table[column].equals(full.table[column]), column
    for key in ("tenant", "service", "kind", "usage_day"):
        assert np.array_equal(cheap.truth[key], full.truth[key])
    # Rates and fees are divided in whole 1e-8 USD, so the bill is 1/30 to within that rounding.
    ratio = full.decimal("billed") / cheap.decimal("billed")
    assert 29.9 < ratio < 30.1, ratio
    assert cheap.decimal("billed") > 0


def test_divisor_must_be_positive():
    with pytest.raises(ValueError, match="cost_divisor"):
        month(PERIOD, 10, cost_divisor=0)
