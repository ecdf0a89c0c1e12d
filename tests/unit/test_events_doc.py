"""docs/events.md says what the validator does: every reason it can give is in the reasons
table (and nothing else is), the limits' defaults are the code's, and the signature example
verifies through the real reader and validator."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from meterline.config import project_root
from meterline.events import validate

pytestmark = pytest.mark.unit

DOC = (project_root() / "docs" / "events.md").read_text()
SNAKE = re.compile(r"^[a-z]+(_[a-z]+)+$")
FIELDS = {*validate.REQUIRED, *validate.STRING_FIELDS, *validate.QUANTITIES, "line_no"}


def section(title: str) -> str:
    start = DOC.index(f"## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end > 0 else None]


def reasons_in_code() -> tuple[set[str], dict[str, tuple[str, ...]]]:
    """The reasons validate.py can give, read from its syntax tree: the names of its checks
    (tuples), of the read errors (`errors[...]`, `errors.setdefault(...)`, the tuples a line
    reader returns) and `pa.scalar(...)` marks; prefixed reasons (f-strings) with the fields
    their loop runs over."""
    tree = ast.parse((project_root() / "include" / "meterline" / "events" / "validate.py").read_text())
    plain: set[str] = set()
    prefixed: dict[str, tuple[str, ...]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple):
            plain |= {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            for e in node.elts:
                if isinstance(e, ast.JoinedStr) and isinstance(e.values[0], ast.Constant):
                    prefixed.setdefault(e.values[0].value, ())
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("scalar", "setdefault") and node.args and isinstance(node.args[0], ast.Constant):
                plain.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "errors":
            plain.add(node.slice.value)
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            # `for name in REQUIRED: ... f"missing_field:{name}"`: the fields the prefix takes
            for joined in ast.walk(node):
                if isinstance(joined, ast.JoinedStr) and isinstance(joined.values[0], ast.Constant):
                    if isinstance(node.iter, ast.Tuple):
                        fields = ast.literal_eval(node.iter)
                    else:
                        fields = getattr(validate, node.iter.id)
                    prefixed[joined.values[0].value] = tuple(fields)
    return {r for r in plain if isinstance(r, str) and SNAKE.match(r)} - FIELDS, prefixed


def test_the_reasons_table_names_every_reason_the_validator_gives_and_no_other():
    plain, prefixed = reasons_in_code()
    table = section("Reasons")
    documented = set(re.findall(r"`([a-z_]+(?::<field>)?)`", table))
    documented = {r for r in documented if SNAKE.match(r.split(":")[0])} - FIELDS
    assert plain == {r for r in documented if ":" not in r}
    assert {f"{prefix}<field>" for prefix in prefixed} == {r for r in documented if ":" in r}
    for prefix, fields in prefixed.items():
        row = next(line for line in table.splitlines() if f"`{prefix}<field>`" in line)
        assert fields and all(field in row for field in fields), (prefix, fields, row)
    # The checks' priority is the table's order.
    order = [r for r in re.findall(r"^\| `([a-z_:<>]+)`", table, re.MULTILINE)]
    checks = ["properties_too_large", "missing_field:<field>", "invalid_uuid:<field>", "invalid_idempotency_key"]
    checks += ["timestamp_without_zone", "invalid_timestamp", "quantity_out_of_range", "invalid_properties"]
    checks += ["invalid_signature", "future_timestamp", "stale_timestamp"]
    assert [r for r in order if r in checks] == checks


def test_the_limits_are_the_codes():
    limits = validate.Limits()
    table = section("Limits")
    expected = {
        "EVENTS_MAX_FILE_BYTES": limits.max_file_bytes,
        "EVENTS_MAX_LINE_BYTES": limits.max_line_bytes,
        "EVENTS_MAX_PROPERTIES_BYTES": limits.max_properties_bytes,
        "EVENTS_STALE_AFTER_DAYS": limits.stale_after.days,
    }
    for name, value in expected.items():
        assert re.search(rf"^\| `{name}` \| {value}\b", table, re.MULTILINE), name
    record = section("The record")
    assert f"at most {validate.KEY_MAX_LENGTH} characters" in record
    assert f"nested at most {validate.MAX_NESTING} levels" in record
    assert validate.QUANTITY_MAX == 10**15 and "from 0 to 10^15" in record
    assert validate.FUTURE_TOLERANCE.total_seconds() == 300 and "not more than 5 minutes after the load" in record
    assert validate.RAW_RECORD_MAX == 64 * 1024 and "cut at 64 KiB" in record
    from meterline.events import SUFFIXES

    files = section("Files")
    assert set(re.findall(r"`(\.[a-z.]+)`", files)) == set(SUFFIXES)


def test_the_signature_example_verifies():
    """The example line, signed as the page says with the key `k`, loads; any other signature
    is bad_signature."""
    signatures = section("Signatures")
    line = json.loads(re.search(r"```json\n(.*?)\n```", signatures, re.DOTALL).group(1))
    canonical = re.search(r"```\n(\{.*?)\n```", signatures, re.DOTALL).group(1)
    signature = re.search(r"its `signature` is\n`([0-9a-f]{64})`", signatures).group(1)
    from meterline.events import signing

    parsed = {**line, "timestamp": datetime.fromisoformat(line["timestamp"])}
    assert signing.canonical(parsed).decode() == canonical

    def reason(signed: dict) -> str | None:
        batch = validate.read_jsonl("events/x.jsonl", json.dumps(signed).encode() + b"\n")
        reasons, _ = validate.validate(
            batch,
            known_subscriptions=pa.array([line["subscription_id"]]),
            known_event_types=pa.array([line["event_type"]]),
            now=datetime(2025, 3, 2, tzinfo=UTC),
            signing_key="k",
            not_before=datetime.combine(date(2025, 3, 1), datetime.min.time(), UTC) - validate.Limits().stale_after,
        )
        return reasons[0].as_py()

    assert reason({**line, "signature": signature}) is None
    assert reason({**line, "signature": signature.upper()}) is None
    assert reason({**line, "signature": signature[:-1] + "0"}) == "bad_signature"
    assert reason(line) == "bad_signature"
