"""One normaliser for every CUR format: column names to snake_case, tags and unknown columns to JSON.

Legacy CSV headers (`lineItem/UnblendedCost`, `resourceTags/user:team`), legacy Athena-style
Parquet (`line_item_unblended_cost`, `resource_tags_user_team`), CUR 2.0 Parquet (`resource_tags`
map) and ETL flattenings of CUR 2.0 (a `resource_tags` JSON string beside `resource_tags_user_*`
columns) all become the same columns: the typed ones of `raw.cur_line_items`, `tags` (one JSON
object, keys normalised like `user_team`) and `extras` (every other column, so a month with new
columns still loads). Everything is done on whole Arrow columns: a million rows take seconds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# Columns that describe where a row came from in an ETL tool, not the bill.
TAG_PREFIX = "resource_tags"
# CUR 2.0 map columns; an ETL flattening writes them as JSON text, parsed back so extras nest them.
MAP_COLUMNS = frozenset({"product", "discount", "cost_category"})
NUMERIC_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


class CurFormatError(ValueError):
    """A file that cannot be read as CUR: names the file, the line and the reason."""


def snake(name: str) -> str:
    """`lineItem/UnblendedCost` -> `line_item_unblended_cost`; `savingsPlan/SavingsPlanARN` ->
    `savings_plan_savings_plan_a_r_n` (as Athena names it); snake_case names are unchanged."""
    parts = [_CAMEL.sub("_", part) for part in name.split("/")]
    return _NON_ALNUM.sub("_", "_".join(parts).lower()).strip("_")


def tag_key(key: str) -> str:
    """A tag key as CUR 2.0 and Athena write it: `user:tenant_id` -> `user_tenant_id`."""
    return _NON_ALNUM.sub("_", key.lower()).strip("_")


def column_name(raw_name: str) -> str:
    """A file's column as `normalise` names it: `resourceTags/user:team` -> `resource_tags_user_team`."""
    if raw_name.startswith("resourceTags/"):
        return f"{TAG_PREFIX}_{tag_key(raw_name.split('/', 1)[1])}"
    return snake(raw_name)


@dataclass(frozen=True)
class Normalised:
    table: pa.Table  # typed columns (as text, for COPY) + tags + extras
    columns: list[str]  # every normalised source column (drift is measured on these)
    extra_columns: list[str]  # source columns kept in extras
    tag_keys: set[str]  # the keys of `tags` in at least one row


def _escape(values: pa.Array) -> pa.Array:
    """JSON string escaping of a string array (control characters other than \\n\\r\\t dropped:
    PostgreSQL's jsonb refuses \\u0000 and nobody tags a resource with a bell)."""
    out = pc.replace_substring(values, "\\", "\\\\")
    out = pc.replace_substring(out, '"', '\\"')
    out = pc.replace_substring(out, "\n", "\\n")
    out = pc.replace_substring(out, "\r", "\\r")
    out = pc.replace_substring(out, "\t", "\\t")
    return pc.replace_substring_regex(out, r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "")


def _as_text(values: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values.cast(pa.string())
    return pc.cast(values, pa.string())


def _json_value(values: pa.Array) -> pa.Array:
    """Each value as a JSON literal (null stays null, so the member is left out)."""
    if pa.types.is_map(values.type):
        return _map_to_json(values, normalise_keys=False)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_decimal(values.type):
        return _as_text(values)
    if pa.types.is_boolean(values.type):
        return pc.if_else(values, "true", "false")
    text = _as_text(values)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    return pc.binary_join_element_wise('"', _escape(text), '"', "")


@dataclass(frozen=True, eq=False)
class _Member:
    """One object member per row: `"key":literal,` (its comma included), or "" where the value
    is left out. A text column is rendered once per distinct value (`rendered`, spread over the
    rows by `indices`): CUR's descriptive columns hold a handful of values over millions of lines."""

    key: str
    rendered: pa.Array
    indices: np.ndarray | None = None  # row -> position in `rendered`; None: one rendering per row

    def per_row(self) -> pa.Array:
        return self.rendered if self.indices is None else self.rendered.take(self.indices)

    def in_some_row(self) -> bool:
        written = pc.not_equal(self.rendered, "")
        if self.indices is None:
            return bool(pc.any(written).as_py())
        return bool(written.to_numpy(zero_copy_only=False)[self.indices].any())


def _member(key: str, values: pa.Array) -> _Member:
    prefix = json.dumps(key) + ":"
    if pa.types.is_dictionary(values.type) or pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        encoded = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
        distinct = len(encoded.dictionary)
        rendered = pc.binary_join_element_wise(prefix, _json_value(encoded.dictionary), ",", "")
        # A null rendering (an empty string) and a null value (the extra "" at the end) leave it out.
        rendered = pa.concat_arrays([pc.fill_null(rendered, ""), pa.array([""], pa.string())])
        indices = pc.fill_null(encoded.indices, distinct).to_numpy().astype(np.int64)
        return _Member(key, rendered, indices)
    return _Member(key, pc.fill_null(pc.binary_join_element_wise(prefix, _json_value(values), ",", ""), ""))


def _combinations(members: list[_Member], length: int) -> pa.Array:
    """The members' concatenation per row, rendered once per distinct combination of their values."""
    code = np.zeros(length, np.int64)
    bound = 1
    for member in members:
        width = len(member.rendered)
        if bound * width >= 2**62:
            code = np.unique(code, return_inverse=True)[1].reshape(-1).astype(np.int64)
            bound = int(code.max()) + 1 if length else 1
        code = code * width + member.indices
        bound *= width
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    combined = pc.binary_join_element_wise(*[m.rendered.take(m.indices[first]) for m in members], "")
    return combined.take(inverse.reshape(-1))


def _object(members: list[_Member], length: int) -> pa.Array:
    """`{m1,m2,...}` per row, leaving out the empty members."""
    if not members:
        return pa.array(["{}"] * length, pa.string())
    # Columns with few distinct values are joined once per distinct combination; a key written
    # twice (case variants of one column) keeps the column order, since jsonb keeps the last.
    few = max(64, length // 64)
    keys = [m.key for m in members]
    grouped = (
        [] if len(set(keys)) < len(keys) else [m for m in members if m.indices is not None and len(m.rendered) <= few]
    )
    if len(grouped) < 2:
        grouped = []
    parts = [_combinations(grouped, length)] if grouped else []
    parts += [m.per_row() for m in members if all(m is not g for g in grouped)]
    body = pc.utf8_rtrim(pc.binary_join_element_wise("{", *parts, ""), characters=",")
    return pc.binary_join_element_wise(body, "}", "")


def _aligned(values: pa.Array) -> pa.MapArray:
    """A map column whose offsets start at 0, so its keys and items line up with them."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.offset or (len(values) and values.offsets[0].as_py() != 0):
        values = values.take(pa.array(np.arange(len(values))))
    return values


def _map_keys(values: pa.Array) -> set[str]:
    """The normalised keys `_map_to_json` writes in at least one row (those with a value)."""
    values = _aligned(values)
    written = pc.is_valid(_json_value(values.items))
    return {tag_key(k) for k in pc.unique(pc.filter(_as_text(values.keys), written)).to_pylist() if k is not None}


def _map_to_json(values: pa.Array, *, normalise_keys: bool) -> pa.Array:
    """A map<string, x> column as one JSON object per row (null or empty map -> `{}`)."""
    values = _aligned(values)
    keys = _as_text(values.keys)
    if normalise_keys:
        unique = pc.unique(keys)
        mapped = pa.array([tag_key(k) if k is not None else None for k in unique.to_pylist()], pa.string())
        keys = pc.take(mapped, pc.index_in(keys, value_set=unique))
    items = values.items
    literal = _json_value(items)
    members = pc.binary_join_element_wise(pc.binary_join_element_wise('"', _escape(keys), '":', ""), literal, "")
    offsets = values.offsets
    lists = pa.ListArray.from_arrays(offsets, members)
    # binary_join of a list with a null member is null: drop null members (empty values) first.
    joined = pc.binary_join(_drop_null_members(lists), ",")
    joined = pc.fill_null(joined, "")
    return pc.binary_join_element_wise("{", joined, "}", "")


def _drop_null_members(lists: pa.ListArray) -> pa.ListArray:
    flat = lists.flatten()
    if flat.null_count == 0:
        return lists
    parents = pc.list_parent_indices(lists)
    keep = pc.is_valid(flat)
    kept_parents = pc.filter(parents, keep).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(kept_parents, minlength=len(lists)))])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pc.filter(flat, keep))


def _json_text_to_map(values: pa.Array, file: str, first_line: int, column: str = TAG_PREFIX) -> pa.Array:
    """A JSON-object text column (an ETL tool's flattening of a map) back into a map."""
    rows = []
    for n, text in enumerate(_as_text(values).to_pylist()):
        if text in (None, ""):
            rows.append([])
            continue
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CurFormatError(f"{file}: line {first_line + n}: {column} is not a JSON object ({exc.msg})") from exc
        if not isinstance(parsed, dict):
            raise CurFormatError(f"{file}: line {first_line + n}: {column} is not a JSON object")
        rows.append([(str(k), None if v is None else str(v)) for k, v in parsed.items()])
    return pa.array(rows, pa.map_(pa.string(), pa.string()))


def _check_numeric(name: str, values: pa.Array, file: str, first_line: int) -> None:
    """Text bound for a numeric column must be a number: else name the line, before COPY does."""
    present = pc.and_(pc.is_valid(values), pc.not_equal(values, ""))
    bad = pc.and_kleene(present, pc.invert(pc.match_substring_regex(values, NUMERIC_PATTERN)))
    if pc.any(bad).as_py():
        index = pc.index(bad, True).as_py()
        raise CurFormatError(
            f"{file}: line {first_line + index}: column {name}: {values[index].as_py()!r} is not a number"
        )


def normalise(
    batch: pa.RecordBatch | pa.Table,
    typed: dict[str, str],
    *,
    file: str,
    first_line: int,
) -> Normalised:
    """Map one batch of any CUR format onto `typed` (column -> 'text' | 'numeric' | 'timestamp').

    `first_line` is the file line (or row) of the batch's first row, for error messages.
    """
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    length = table.num_rows
    columns: dict[str, pa.Array] = {}
    tag_members: list[_Member] = []
    tag_maps: list[pa.Array] = []
    extra_members: list[_Member] = []
    seen: list[str] = []
    extras: list[str] = []
    for raw_name, chunked in zip(table.column_names, table.columns, strict=True):
        values = chunked.combine_chunks() if isinstance(chunked, pa.ChunkedArray) else chunked
        if raw_name.startswith("resourceTags/"):
            seen.append(column_name(raw_name))
            tag_members.append(_member(tag_key(raw_name.split("/", 1)[1]), values))
            continue
        name = snake(raw_name)
        seen.append(name)
        if name == TAG_PREFIX:
            if pa.types.is_map(values.type):
                tag_maps.append(values)
            else:
                tag_maps.append(_json_text_to_map(values, file, first_line))
        elif name.startswith(TAG_PREFIX + "_"):
            tag_members.append(_member(name[len(TAG_PREFIX) + 1 :], values))
        elif name in typed:
            if name in columns:
                continue  # the same column twice (e.g. case variants): the first wins
            number = (
                pa.types.is_floating(values.type)
                or pa.types.is_integer(values.type)
                or pa.types.is_decimal(values.type)
            )
            if pa.types.is_timestamp(values.type):
                # Arrow keeps instants in UTC: drop the zone to print them without it (rendering a
                # zoned timestamp is ~25x slower); the loader's session reads them as UTC.
                columns[name] = values.cast(pa.timestamp(values.type.unit)) if values.type.tz else values
            elif number and typed[name] == "numeric":
                columns[name] = values  # the CSV writer prints the shortest exact repr
            else:
                text = _as_text(values)
                if typed[name] != "text":
                    text = pc.if_else(pc.equal(pc.utf8_trim_whitespace(text), ""), pa.scalar(None, pa.string()), text)
                    if typed[name] == "numeric":
                        _check_numeric(name, text, file, first_line)
                columns[name] = text
        else:
            extras.append(name)
            if name in MAP_COLUMNS and not pa.types.is_map(values.type):
                values = _json_text_to_map(values, file, first_line, name)
            extra_members.append(_member(name, values))

    # A map's keys and the flattened columns name the same tags: the flattened columns win.
    tag_objects = [_map_to_json(m, normalise_keys=True) for m in tag_maps]
    flat = _object(tag_members, length)
    if tag_objects:
        merged = tag_objects[0]
        # Concatenate the JSON texts; jsonb keeps the last of duplicate keys.
        inner = [pc.utf8_slice_codeunits(part, 1, -1) for part in (merged, flat)]
        members = [pc.if_else(pc.equal(part, ""), "", pc.binary_join_element_wise(part, ",", "")) for part in inner]
        tags = _object([_Member(key, member) for key, member in zip(("map", "flat"), members, strict=True)], length)
    else:
        tags = flat

    out = {name: columns.get(name, pa.nulls(length, pa.string())) for name in typed}
    out["tags"] = tags
    out["extras"] = _object(extra_members, length)
    tag_keys = {m.key for m in tag_members if m.in_some_row()}.union(*(_map_keys(m) for m in tag_maps))
    return Normalised(pa.table(out), columns=seen, extra_columns=extras, tag_keys=tag_keys)
