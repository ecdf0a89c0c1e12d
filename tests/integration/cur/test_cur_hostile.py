"""Hostile CUR deliveries (issue 14): inputs our generator never writes, each with the exact
outcome: what is live, the ledger rows, the reasons. Legacy CSV cases use the real AWS sample
(tests/fixtures/cur, from ../shared/reference-data); figures come from csv + Decimal, not the loader."""

from __future__ import annotations

import csv
import json
import logging
import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meterline.cur.load import run
from meterline.landing import Zone
from meterline.synthetic.cur import write_report_status

from .conftest import CUR2_ROWS, cost_of, legacy_rows, write_legacy

pytestmark = pytest.mark.integration

NOV = date(2023, 11, 1)
NOV_FOLDER = "20231101-20231201"


def _live(db, period: date) -> tuple[int, Decimal, int | None]:
    """Rows and unblended cost of the period in raw.cur_line_items, and the live delivery id."""
    rows, cost, ids = db.execute(
        "select count(*), coalesce(sum(line_item_unblended_cost), 0), array_agg(distinct delivery_id)"
        " from raw.cur_line_items where billing_period = %s",
        [period],
    ).fetchone()
    assert ids is None or len(ids) == 1
    return rows, cost, ids[0] if ids else None


def _ledger(db) -> list[tuple]:
    return db.execute(
        "select delivery_id, assembly_id, status, row_count, unblended_cost, is_final, superseded_by, error"
        " from raw.cur_deliveries order by delivery_id"
    ).fetchall()


def _final(header: list[str], rows: list[list[str]], invoice: str) -> list[list[str]]:
    index = header.index("bill/InvoiceId")
    return [[*r[:index], invoice, *r[index + 1 :]] for r in rows]


def _statuses(summary) -> list[tuple[str, str]]:
    return [(o.key.rsplit(":", 1)[-1], o.status) for o in summary.outcomes]


def _touch(folder: Path, when: datetime) -> None:
    for path in [folder, *folder.iterdir()]:
        os.utime(path, (when.timestamp(), when.timestamp()))


def test_legacy_without_creation_time_the_period_manifest_decides_and_a_final_month_stays(
    db, warehouse_url, landing: Path
):
    header, rows = legacy_rows()
    partial = rows[:700]
    final_rows = _final(header, rows, "EUINUS23-000123")
    partial_cost, final_cost = cost_of(header, partial), cost_of(header, final_rows)
    assert (len(partial), partial_cost, len(final_rows), final_cost) == (
        700,
        Decimal("0.64122057430"),
        1281,
        Decimal("1.68230869740"),
    )
    older = write_legacy(landing, NOV_FOLDER, "asm-older", header, partial)
    assert _statuses(run(warehouse_url, str(landing))) == [("asm-older", "loaded")]
    write_legacy(landing, NOV_FOLDER, "asm-final", header, final_rows)
    assert sorted(_statuses(run(warehouse_url, str(landing)))) == [
        ("asm-final", "loaded"),
        ("asm-older", "skipped"),
    ]
    assert _live(db, NOV) == (1281, final_cost, 2)

    # The older assembly is touched (restored from a backup, copied, re-uploaded): its files are now
    # the newest in the zone. File times are not evidence: nothing changes.
    _touch(older, datetime(2031, 1, 1, tzinfo=UTC))
    summary = run(warehouse_url, str(landing))
    reasons = {o.key.rsplit(":", 1)[-1]: (o.status, o.reason) for o in summary.outcomes}
    assert reasons["asm-final"] == ("skipped", "already live")
    assert reasons["asm-older"][0] == "skipped"
    assert reasons["asm-older"][1].startswith("not current: the period manifest ")
    assert reasons["asm-older"][1].endswith(f"/{NOV_FOLDER}/hostile-Manifest.json names asm-final")
    assert _live(db, NOV) == (1281, final_cost, 2)

    # Even when the period manifest names the older, non-final assembly again, the final month stays.
    write_legacy(landing, NOV_FOLDER, "asm-older", header, partial)
    summary = run(warehouse_url, str(landing))
    older_outcome = next(o for o in summary.outcomes if o.key.endswith("asm-older"))
    assert older_outcome.status == "skipped"
    assert older_outcome.reason == (
        "not final (no bill_invoice_id) while live delivery 2 is final (invoice EUINUS23-000123):"
        " a final month is never replaced by a non-final delivery"
    )
    assert _live(db, NOV) == (1281, final_cost, 2)
    assert _ledger(db) == [
        (1, "asm-older", "loaded", 700, partial_cost, False, 2, None),
        (2, "asm-final", "loaded", 1281, final_cost, True, None, None),
    ]
    partitions = db.execute("select count(*) from pg_inherits where inhparent = 'raw.cur_line_items'::regclass")
    assert partitions.fetchone()[0] == 1


def test_assemblies_seen_together_only_the_named_one_loads_and_without_any_evidence_none_does(
    db, warehouse_url, landing: Path
):
    header, rows = legacy_rows()
    write_legacy(landing, NOV_FOLDER, "asm-a", header, rows[:100])
    write_legacy(landing, NOV_FOLDER, "asm-b", header, rows[:200])  # the period manifest names b
    summary = run(warehouse_url, str(landing))
    assert _statuses(summary) == [("asm-a", "skipped"), ("asm-b", "loaded")]
    assert _live(db, NOV) == (200, cost_of(header, rows[:200]), 2)
    ledger = _ledger(db)
    assert [(r[1], r[2], r[3]) for r in ledger] == [("asm-a", "skipped", None), ("asm-b", "loaded", 200)]
    assert ledger[0][7].startswith("not current: the period manifest")

    # Another report, December: two assemblies, no period-level manifest, no creationTime. Nothing
    # AWS wrote orders them, so neither loads and the run fails naming why.
    write_legacy(landing, "20231201-20240101", "asm-x", header, rows[:10], report="other", period_manifest=False)
    write_legacy(landing, "20231201-20240101", "asm-y", header, rows[:20], report="other", period_manifest=False)
    summary = run(warehouse_url, str(landing))
    assert [o.status for o in summary.outcomes if "other" in o.key] == ["failed", "failed"]
    assert "cannot tell which of 2 deliveries of cur/acme/other/20231201-20240101 is current" in summary.failed[0]
    assert _live(db, date(2023, 12, 1)) == (0, Decimal(0), None)
    # With a creationTime in each, the latest is current.
    write_legacy(
        landing, "20231201-20240101", "asm-x", header, rows[:10], report="other", period_manifest=False,
        creation_time="2024-01-02T06:00:00.000Z",
    )  # fmt: skip
    write_legacy(
        landing, "20231201-20240101", "asm-y", header, rows[:20], report="other", period_manifest=False,
        creation_time="2023-12-20T06:00:00.000Z",
    )  # fmt: skip
    summary = run(warehouse_url, str(landing))
    assert [(o.key[-5:], o.status) for o in summary.outcomes if "other" in o.key] == [
        ("asm-y", "skipped"),
        ("asm-x", "loaded"),
    ]
    assert _live(db, date(2023, 12, 1))[:2] == (10, cost_of(header, rows[:10]))


def test_re_delivered_original_becomes_live_again_and_the_log_says_why_each_was_skipped(
    db, warehouse_url, landing: Path, caplog: pytest.LogCaptureFixture
):
    header, rows = legacy_rows()
    original, restated = rows, rows[:-12]  # the restatement dropped the 12 Tax lines
    write_legacy(landing, NOV_FOLDER, "asm-original", header, original)
    run(warehouse_url, str(landing))
    write_legacy(landing, NOV_FOLDER, "asm-restated", header, restated)
    run(warehouse_url, str(landing))
    assert _live(db, NOV) == (1269, cost_of(header, restated), 2)

    # AWS puts the original back: the period manifest names it again. It is loaded again (its
    # ledger row is live again), not skipped as "already loaded".
    write_legacy(landing, NOV_FOLDER, "asm-original", header, original)
    with caplog.at_level(logging.INFO, logger="meterline.cur.load"):
        summary = run(warehouse_url, str(landing))
    assert [(o.key.rsplit(":", 1)[-1], o.status, o.reason) for o in summary.outcomes] == [
        ("asm-original", "loaded", "not final; current again: replaces delivery 2"),
        (
            "asm-restated",
            "skipped",
            f"not current: the period manifest {landing}/cur/acme/hostile/{NOV_FOLDER}/hostile-Manifest.json"
            " names asm-original",
        ),
    ]
    assert _live(db, NOV) == (1281, Decimal("1.68230869740"), 1)
    assert [(r[0], r[2], r[6]) for r in _ledger(db)] == [(1, "loaded", None), (2, "loaded", 1)]
    logged = [r.getMessage() for r in caplog.records]
    assert any("asm-restated (2023-11): skipped: not current: the period manifest" in m for m in logged)
    # And a run with nothing new says why each is skipped.
    again = run(warehouse_url, str(landing))
    assert [(o.status, o.reason[:20]) for o in again.outcomes] == [
        ("skipped", "already live"),
        ("skipped", "not current: the per"),
    ]


def test_a_manifest_naming_a_missing_file_fails_that_delivery_only(db, warehouse_url, landing: Path):
    header, rows = legacy_rows()
    write_legacy(landing, NOV_FOLDER, "asm-1", header, rows[:300])
    run(warehouse_url, str(landing))
    write_legacy(landing, NOV_FOLDER, "asm-2", header, rows, extra_keys=("hostile-00002.csv.gz",))
    december = [[*r] for r in rows[:50]]
    write_legacy(landing, "20231201-20240101", "asm-dec", header, december)

    summary = run(warehouse_url, str(landing))

    assert _statuses(summary) == [("asm-1", "skipped"), ("asm-2", "failed"), ("asm-dec", "loaded")]
    missing = f"{landing}/cur/acme/hostile/{NOV_FOLDER}/asm-2/hostile-00002.csv.gz"
    error = db.execute("select error from raw.cur_deliveries where assembly_id = 'asm-2'").fetchone()[0]
    assert error == (
        f"the manifest {landing}/cur/acme/hostile/{NOV_FOLDER}/asm-2/hostile-Manifest.json names 1 missing"
        f" file(s): {missing}"
    )
    assert summary.failed == [f"legacy:cur/acme/hostile/{NOV_FOLDER}:asm-2: CUR delivery"
                              f" legacy:cur/acme/hostile/{NOV_FOLDER}:asm-2 for 2023-11 failed: {error}"]  # fmt: skip
    assert _live(db, NOV) == (300, cost_of(header, rows[:300]), 1)
    assert _live(db, date(2023, 12, 1)) == (50, cost_of(header, december), 3)
    assert [(r[1], r[2]) for r in _ledger(db)] == [("asm-1", "loaded"), ("asm-2", "failed"), ("asm-dec", "loaded")]
    audit = db.execute("select count(*) from ops.audit_log where action = 'cur.delivery_failed'").fetchone()[0]
    assert audit == 1


@pytest.mark.parametrize(
    ("renamed", "column"),
    [
        ("lineItem/UnblendedCost", "line_item_unblended_cost (lineItem/UnblendedCost)"),
        ("lineItem/UsageStartDate", "line_item_usage_start_date (lineItem/UsageStartDate)"),
        ("lineItem/UsageEndDate", "line_item_usage_end_date (lineItem/UsageEndDate)"),
        ("lineItem/LineItemType", "line_item_line_item_type (lineItem/LineItemType)"),
        ("lineItem/CurrencyCode", "line_item_currency_code (lineItem/CurrencyCode)"),
    ],
)
def test_a_delivery_without_a_required_column_is_refused(db, warehouse_url, landing: Path, renamed, column):
    header, rows = legacy_rows()
    write_legacy(landing, NOV_FOLDER, "asm-1", header, rows)
    run(warehouse_url, str(landing))
    bad_header = [f"{h}V2" if h == renamed else h for h in header]
    write_legacy(landing, NOV_FOLDER, "asm-2", bad_header, rows)

    summary = run(warehouse_url, str(landing))

    data = f"{landing}/cur/acme/hostile/{NOV_FOLDER}/asm-2/hostile-00001.csv.gz"
    assert _statuses(summary) == [("asm-1", "skipped"), ("asm-2", "failed")]
    assert db.execute("select status, error from raw.cur_deliveries where assembly_id = 'asm-2'").fetchone() == (
        "failed",
        f"{data}: refused: no required column {column}",
    )
    assert _live(db, NOV) == (1281, Decimal("1.68230869740"), 1)


def test_a_tag_column_that_disappears_is_drift_against_the_same_period(db, warehouse_url, landing: Path):
    header, rows = legacy_rows()
    tagged_header = [*header, "resourceTags/user:tenant_id", "resourceTags/user:team"]
    tagged = [[*r, f"t-{n % 3}", "core"] for n, r in enumerate(rows)]
    write_legacy(landing, NOV_FOLDER, "asm-1", tagged_header, tagged)
    run(warehouse_url, str(landing))
    # The restatement lost the tenant tag column (renamed in the cost allocation tags console).
    renamed_header = [*header, "resourceTags/user:tenantid", "resourceTags/user:team"]
    write_legacy(landing, NOV_FOLDER, "asm-2", renamed_header, tagged)

    summary = run(warehouse_url, str(landing))

    assert _statuses(summary) == [("asm-1", "skipped"), ("asm-2", "loaded")]
    drift = db.execute(
        "select columns_added, columns_removed, tag_keys, tag_keys_added, tag_keys_removed, drift_basis,"
        " drift_against from raw.cur_deliveries where delivery_id = 2"
    ).fetchone()
    assert drift == (
        ["resource_tags_user_tenantid"],
        ["resource_tags_user_tenant_id"],
        ["user_team", "user_tenantid"],
        ["user_tenantid"],
        ["user_tenant_id"],
        "previous delivery 1 of 2023-11",
        1,
    )
    assert _live(db, NOV) == (1281, Decimal("1.68230869740"), 2)


def test_drift_of_a_restated_month_is_measured_against_that_month_not_the_latest(db, warehouse_url, landing: Path):
    header, rows = legacy_rows()
    december_header = [*header, "product/instanceFamily"]
    write_legacy(landing, NOV_FOLDER, "asm-nov-1", header, rows, creation_time="2023-12-02T06:00:00.000Z")
    write_legacy(
        landing, "20231201-20240101", "asm-dec-1", december_header, [[*r, "general"] for r in rows[:40]],
        creation_time="2024-01-02T06:00:00.000Z",
    )  # fmt: skip
    run(warehouse_url, str(landing))
    write_legacy(landing, NOV_FOLDER, "asm-nov-2", header, rows[:1000], creation_time="2024-01-05T06:00:00.000Z")
    run(warehouse_url, str(landing))

    drift = db.execute(
        "select assembly_id, columns_added, columns_removed, drift_basis from raw.cur_deliveries order by delivery_id"
    ).fetchall()
    assert drift == [
        ("asm-nov-1", [], [], "first delivery of report hostile (legacy_csv): no drift measured"),
        (
            "asm-dec-1",
            ["product_instance_family"],
            [],
            "first delivery of 2023-12: against delivery 1 of 2023-11, the report's latest earlier period",
        ),
        ("asm-nov-2", [], [], "previous delivery 1 of 2023-11"),
    ]


def _partition_table(costs: list[str], currency: str = "USD") -> pa.Table:
    n = len(costs)
    return pa.table(
        {
            "line_item_line_item_type": ["Usage"] * n,
            "line_item_usage_start_date": ["2025-03-02T00:00:00Z"] * n,
            "line_item_usage_end_date": ["2025-03-02T01:00:00Z"] * n,
            "line_item_product_code": ["AmazonS3"] * n,
            "line_item_currency_code": [currency] * n,
            "line_item_unblended_cost": costs,
            "resource_tags_user_tenant_id": ["t-1"] * n,
        }
    )


def _write_parquet(zone: Zone, rel: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    zone.write_bytes(rel, sink.getvalue().to_pybytes())


REPORT = "cur/athena/hostile-athena"
PARTITION = f"{REPORT}/hostile-athena/year=2025/month=3"


def test_a_report_being_refreshed_waits_and_the_next_run_loads_it(db, warehouse_url, landing: Path):
    zone = Zone(str(landing))
    _write_parquet(zone, f"{PARTITION}/part-00001.snappy.parquet", _partition_table(["1.10", "2.20", "3.30"]))
    write_report_status(zone, REPORT, "READY")
    assert [o.status for o in run(warehouse_url, str(landing)).outcomes] == ["loaded"]
    assert _live(db, date(2025, 3, 1)) == (3, Decimal("6.60"), 1)

    # AWS starts rewriting the report: UPDATING, and the partition holds half the new files.
    write_report_status(zone, REPORT, "UPDATING")
    _write_parquet(zone, f"{PARTITION}/part-00001.snappy.parquet", _partition_table(["10.00"] * 4))
    summary = run(warehouse_url, str(landing))
    assert [o.status for o in summary.outcomes] == ["waiting"]
    assert summary.waiting[0].endswith(
        f"waiting: AWS is refreshing the report ({landing}/{REPORT}/cost_and_usage_data_status says UPDATING);"
        " a later run loads it"
    )
    assert _live(db, date(2025, 3, 1)) == (3, Decimal("6.60"), 1)
    assert db.execute("select status from raw.cur_deliveries order by delivery_id").fetchall() == [
        ("loaded",),
        ("waiting",),
    ]

    # Done: all files written, READY. The next run loads the whole month.
    _write_parquet(zone, f"{PARTITION}/part-00002.snappy.parquet", _partition_table(["0.25"] * 4))
    write_report_status(zone, REPORT, "READY")
    summary = run(warehouse_url, str(landing))
    assert [o.status for o in summary.outcomes] == ["loaded"]
    assert _live(db, date(2025, 3, 1)) == (8, Decimal("41.00"), 3)
    assert db.execute("select delivery_id, status, superseded_by from raw.cur_deliveries order by 1").fetchall() == [
        (1, "loaded", 3),
        (2, "skipped", None),  # the half-written observation never loads
        (3, "loaded", None),
    ]


def test_a_partition_without_status_file_loads_once_its_file_set_stops_growing(db, warehouse_url, landing: Path):
    zone = Zone(str(landing))
    _write_parquet(zone, f"{PARTITION}/part-00001.snappy.parquet", _partition_table(["1.00", "2.00"]))
    first = run(warehouse_url, str(landing))
    assert [o.status for o in first.outcomes] == ["waiting"]
    assert "first seen with these files" in first.waiting[0]
    assert _live(db, date(2025, 3, 1)) == (0, Decimal(0), None)

    _write_parquet(zone, f"{PARTITION}/part-00002.snappy.parquet", _partition_table(["4.00"]))  # still growing
    assert [o.status for o in run(warehouse_url, str(landing)).outcomes] == ["waiting"]
    assert _live(db, date(2025, 3, 1)) == (0, Decimal(0), None)

    settled = run(warehouse_url, str(landing))  # the same files as the previous run: settled
    assert [o.status for o in settled.outcomes] == ["loaded"]
    assert _live(db, date(2025, 3, 1)) == (3, Decimal("7.00"), 2)
    assert db.execute("select delivery_id, status, row_count from raw.cur_deliveries order by 1").fetchall() == [
        (1, "skipped", None),
        (2, "loaded", 3),
    ]


def test_currency_of_each_line_is_stored_and_the_ledger_lists_them(db, warehouse_url, landing: Path):
    zone = Zone(str(landing))
    table = pa.concat_tables([_partition_table(["100.00", "0.50"]), _partition_table(["250"], currency="JPY")])
    _write_parquet(zone, f"{PARTITION}/part-00001.snappy.parquet", table)
    write_report_status(zone, REPORT, "READY")

    summary = run(warehouse_url, str(landing))

    assert [(o.status, o.currencies) for o in summary.outcomes] == [("loaded", ["JPY", "USD"])]
    assert db.execute("select currencies from raw.cur_deliveries").fetchone()[0] == ["JPY", "USD"]
    by_currency = db.execute(
        "select line_item_currency_code, count(*), sum(line_item_unblended_cost) from raw.cur_line_items"
        " group by 1 order by 1"
    ).fetchall()
    assert by_currency == [("JPY", 1, Decimal("250")), ("USD", 2, Decimal("100.50"))]


def test_cur2_executions_of_the_real_sample_the_latest_folder_stamp_is_current_whatever_the_file_times(
    db, warehouse_url, landing: Path
):
    """The CUR 2.0 sample's NeeStandardCostReport export holds seven executions of 2024-03, each in a
    `<timestamp>-<executionId>` folder as AWS names them; their manifests here carry no time, and
    the oldest execution's files are the most recently written."""
    with CUR2_ROWS.open(newline="") as handle:
        rows = [
            r for r in csv.DictReader(handle) if "/NeeStandardCostReport/data/BILLING_PERIOD=2024-03/" in r["_file"]
        ]
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(row["_file"], []).append(row)
    assert len(by_file) == 7
    zone = Zone(str(landing))
    export = "cur/cds/NeeStandardCostReport"
    for key, file_rows in sorted(by_file.items(), reverse=True):  # the oldest written last
        rel = f"{export}/{key.split('/NeeStandardCostReport/', 1)[1]}"
        _write_parquet(zone, rel, pa.Table.from_pylist(file_rows))
        folder = rel.rsplit("/", 2)[1]
        manifest = {
            "executionId": folder.split("Z-", 1)[1],
            "billingPeriod": {"start": "2024-03-01T00:00:00.000Z"},
            "dataFiles": [f"s3://bucket/{key}"],
        }
        zone.write_bytes(
            f"{export}/metadata/BILLING_PERIOD=2024-03/{folder}/NeeStandardCostReport-Manifest.json",
            json.dumps(manifest).encode(),
        )

    summary = run(warehouse_url, str(landing))

    latest = "6b622448-daaa-439c-92f1-afc727f1e0a3"
    assert [(o.key.rsplit(":", 1)[-1], o.status) for o in summary.outcomes if o.status == "loaded"] == [
        (latest, "loaded")
    ]
    skipped = [o.reason for o in summary.outcomes if o.status == "skipped"]
    assert len(skipped) == 6
    assert all(
        r.startswith(f"not current: {latest} of 2024-04-02T13:14:43Z is newer (this one 2024-0") for r in skipped
    )
    expected_ids = [r["identity_line_item_id"] for r in by_file[next(k for k in by_file if latest in k)]]
    live_ids = db.execute("select identity_line_item_id from raw.cur_line_items order by line_seq").fetchall()
    assert [r[0] for r in live_ids] == expected_ids
    assert db.execute(
        "select count(*), count(*) filter (where status = 'skipped') from raw.cur_deliveries"
    ).fetchone() == (7, 6)
