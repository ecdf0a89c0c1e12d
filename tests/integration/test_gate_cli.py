"""The operator's commands: `meterline gate|emit|invoice ...` exit 1 when blocked, 2 when
refused (one line naming the input and why), and say what to do."""

from __future__ import annotations

import psycopg
import pytest
from _gate_month import fail_reconciliation
from handwritten_month import catalog_never_had

from meterline import cli

pytestmark = pytest.mark.integration


def meterline(*argv: str) -> int:
    return cli.main(list(argv))


def test_gate_emit_and_corrections_from_the_command_line(month_db: psycopg.Connection, month_url, tmp_path, capsys):
    db = month_db
    fail_reconciliation(db)
    outbox = str(tmp_path / "outbox")

    assert meterline("gate", "--period", "2025-03", "--skip-dbt") == 1
    assert "BLOCKED" in capsys.readouterr().out
    assert meterline("emit", "--period", "2025-03", "--outbox", outbox) == 1
    assert "nothing emitted" in capsys.readouterr().out

    why = "reconciliation=variance is the pending AWS credit memo (FIN-42)"
    assert meterline("gate", "--period", "2025-03", "--skip-dbt", "--override", why, "--actor", "ops:alice") == 0
    assert "overridden reconciliation" in capsys.readouterr().out
    assert meterline("emit", "--period", "2025-03", "--outbox", outbox) == 0
    assert "issued 3" in capsys.readouterr().out
    number = db.execute("select invoice_number from billing.invoices where tenant_id = 't-0001'").fetchone()[0]

    args = ["--invoice", number, "--reason", "SLA breach", "--actor", "ops:carol", "--outbox", outbox]
    assert meterline("invoice", "credit-note", "--amount", "10", *args) == 0
    assert meterline("invoice", "credit-note", "--amount", "1000", *args) == 2
    assert "meterline invoice: error: credit 1000.00 USD exceeds" in capsys.readouterr().err
    assert meterline("invoice", "credit", "--tenant", "t-0001", "--amount", "5", "--reason", "r", "--actor", "a") == 0
    dispute = ["--invoice", number, "--reason", "3 days of outage", "--actor", "ops:dan"]
    assert meterline("invoice", "dispute", *dispute) == 0
    assert meterline("invoice", "dispute", *dispute) == 2
    assert f"meterline invoice: error: invoice {number} is disputed, not issued" in capsys.readouterr().err
    assert db.execute(
        "select action, actor from ops.audit_log where action in ('gate.check_overridden', 'credit_note.issued',"
        " 'credit.granted') order by audit_id"
    ).fetchall() == [
        ("gate.check_overridden", "ops:alice"),
        ("credit_note.issued", "ops:carol"),
        ("credit.granted", "a"),
    ]


def test_close_runs_the_dags_steps_and_says_which_stopped_it(month_db: psycopg.Connection, month_url, tmp_path, capsys):
    """`meterline close` = build, suites, gate, emit, report, as close_billing_period runs them."""
    outbox = str(tmp_path / "outbox")
    catalog_never_had(month_db, "tax_rates", "country = %s", ["JP"])
    assert meterline("close", "--period", "2025-03", "--outbox", outbox) == 0
    out = capsys.readouterr().out
    assert "build: {'drafts': 3," in out and "emit: {'issued': 2, 'already_issued': 0, 'blocked': 1}" in out
    assert f"close report: {outbox}/reports/2025-03.html" in out
    assert month_db.execute("select count(*) from billing.invoices").fetchone() == (2,)

    month_db.execute(
        "insert into raw.events_rejected (source_file, checksum, line_no, reason, raw_record, partition_date)"
        " select 'events/bad.jsonl', 'abc', n, 'malformed_json', '{', '2025-03-02' from generate_series(1, 15) n"
    )
    assert meterline("close", "--period", "2025-03", "--outbox", outbox) == 1
    out = capsys.readouterr().out
    assert "gate stopped the close of 2025-03" in out and "dq.events_rejected.rejection_rate_under_threshold" in out
    assert f"close report: {outbox}/reports/2025-03.html" in out
