"""The CUR normaliser without a database: names, tags, JSON text, number checks."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from meterline.cur.normalise import CurFormatError, normalise, snake, tag_key
from meterline.synthetic.cur import legacy_header

pytestmark = pytest.mark.unit

TYPED = {
    "line_item_unblended_cost": "numeric",
    "line_item_product_code": "text",
    "line_item_usage_start_date": "timestamp",
}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("lineItem/UnblendedCost", "line_item_unblended_cost"),
        ("identity/LineItemId", "identity_line_item_id"),
        ("savingsPlan/SavingsPlanARN", "savings_plan_savings_plan_a_r_n"),
        ("product/servicecode", "product_servicecode"),
        ("pricing/publicOnDemandCost", "pricing_public_on_demand_cost"),
        ("line_item_unblended_cost", "line_item_unblended_cost"),
        ("_fivetran_synced", "fivetran_synced"),
    ],
)
def test_column_names_become_athena_snake_case(header: str, expected: str):
    assert snake(header) == expected


@pytest.mark.parametrize(
    "name", ["line_item_unblended_cost", "savings_plan_savings_plan_effective_cost", "bill_invoice_id"]
)
def test_the_generators_legacy_headers_normalise_back(name: str):
    assert snake(legacy_header(name)) == name


def test_tag_keys_normalise_like_cur2():
    assert tag_key("user:tenant_id") == "user_tenant_id"
    assert tag_key("user:Cost-Center") == "user_cost_center"


def test_legacy_tag_columns_merge_into_one_object_and_empty_values_are_no_tag():
    batch = pa.table(
        {
            "lineItem/UnblendedCost": ["1.5", "", "2E-3"],
            "resourceTags/user:tenant_id": ["t-0001", None, ""],
            "resourceTags/user:team": ['core "a"', None, "x\ny"],
            "product/newThing": [None, None, "v"],
        }
    )
    out = normalise(batch, TYPED, file="f.csv", first_line=2)
    tags = [json.loads(t) for t in out.table.column("tags").to_pylist()]
    assert tags == [{"user_tenant_id": "t-0001", "user_team": 'core "a"'}, {}, {"user_team": "x\ny"}]
    assert [json.loads(e) for e in out.table.column("extras").to_pylist()] == [{}, {}, {"product_new_thing": "v"}]
    assert out.table.column("line_item_unblended_cost").to_pylist() == ["1.5", None, "2E-3"]
    assert out.extra_columns == ["product_new_thing"]
    assert out.columns == [
        "line_item_unblended_cost",
        "resource_tags_user_tenant_id",
        "resource_tags_user_team",
        "product_new_thing",
    ]


def test_a_cur2_tag_map_normalises_its_keys():
    tags = pa.array([[("user:tenant_id", "t-1"), ("user_team", "")], [], None], pa.map_(pa.string(), pa.string()))
    out = normalise(pa.table({"resource_tags": tags}), TYPED, file="f.parquet", first_line=1)
    assert [json.loads(t) for t in out.table.column("tags").to_pylist()] == [{"user_tenant_id": "t-1"}, {}, {}]


def test_a_value_that_is_not_a_number_names_file_line_and_column():
    batch = pa.table({"lineItem/UnblendedCost": ["1", "2", "1,5"]})
    with pytest.raises(
        CurFormatError, match=r"^f\.csv: line 12: column line_item_unblended_cost: '1,5' is not a number$"
    ):
        normalise(batch, TYPED, file="f.csv", first_line=10)


def test_resource_tags_that_are_not_json_name_the_line():
    batch = pa.table({"resource_tags": ['{"user_a": "1"}', "{not json"]})
    with pytest.raises(CurFormatError, match=r"f\.csv: line 3: resource_tags is not a JSON object"):
        normalise(batch, TYPED, file="f.csv", first_line=2)


def _wide_batch(rows: int, *, duplicate: bool) -> tuple[pa.Table, list[str]]:
    """Many descriptive columns as a wide legacy report has them: few distinct values (some with
    quotes, backslashes, newlines, non-ASCII), one value per row, numbers, nulls and empty strings,
    plain and dictionary-encoded; with `duplicate`, two columns that normalise to the same name."""
    rng = np.random.default_rng(5)
    few = ["", "Linux", 'say "hi"', "back\\slash", "line\nbreak", "Zürich ✓", None]
    columns: dict[str, pa.Array] = {"line_item_unblended_cost": pa.array(["1"] * rows)}
    for n in range(40):
        values = pa.array([few[i] for i in rng.integers(0, len(few) - (n % 3), rows)], pa.string())
        columns[f"product_attr_{n}"] = values.dictionary_encode() if n % 4 == 0 else values
    columns["pricing_rate_id"] = pa.array([f"sku-{i}" if i % 7 else "" for i in range(rows)])
    columns["reservation_upfront_value"] = pa.array([None if i % 3 else i / 8 for i in range(rows)], pa.float64())
    for n in range(12):
        columns[f"resource_tags_user_k{n}"] = pa.array(
            [None if v == len(few) - 1 else few[v] for v in rng.integers(0, len(few), rows)]
            if n
            else [""] * rows  # a tag column no line uses: no tag key
        )
    if duplicate:
        columns["product/attr_1"] = pa.array([few[i] for i in rng.integers(0, 3, rows)])
    return pa.table(columns), list(columns)


@pytest.mark.parametrize("duplicate", [False, True])
def test_wide_rows_render_the_json_a_row_by_row_oracle_writes(duplicate: bool):
    batch, names = _wide_batch(600, duplicate=duplicate)
    out = normalise(batch, TYPED, file="f.parquet", first_line=1)

    def oracle(prefix: str) -> list[dict]:
        rows = []
        for row in batch.to_pylist():
            members = {}
            for name in names:
                value = row[name]
                key = snake(name)
                if not key.startswith(prefix) or key in TYPED or value is None or value == "":
                    continue
                members[key[len(prefix) :] if prefix else key] = value  # a later column wins, as in jsonb
            rows.append(members)
        return rows

    tags = oracle("resource_tags_")
    extras = [{k: v for k, v in row.items() if not k.startswith("resource_tags")} for row in oracle("")]
    assert [json.loads(e) for e in out.table.column("extras").to_pylist()] == extras
    assert [json.loads(t) for t in out.table.column("tags").to_pylist()] == tags
    assert out.tag_keys == {k for row in tags for k in row} == {f"user_k{n}" for n in range(1, 12)}
