"""Errors an operator reads (issue 14): a command given an input it cannot act on ends with one
line naming the input and the reason, exit code 2, no traceback; a failed dbt test is named with
its failing rows, not as "returned non-zero exit status 1"."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from meterline import cli, transform
from meterline.errors import InputError, fail_without_retry
from meterline.transform import ChecksFailed

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["gate", "--period", "2025-13", "--skip-dbt"],
            "meterline gate: error: argument --period: period '2025-13' is not a month written YYYY-MM (e.g. 2025-03)",
        ),
        (
            ["emit", "--period", "March"],
            "meterline emit: error: argument --period: period 'March' is not a month written YYYY-MM (e.g. 2025-03)",
        ),
        (
            ["invoice", "credit", "--tenant", "t-0001", "--amount", "NaN", "--reason", "r", "--actor", "ops:ann"],
            "meterline invoice credit: error: argument --amount: amount 'NaN' is not a finite number",
        ),
        (
            [
                "invoice",
                "credit-note",
                "--invoice",
                "INV-2025-000001",
                "--amount",
                "1e30",
                "--reason",
                "r",
                "--actor",
                "ops:ann",
            ],
            "meterline invoice credit-note: error: argument --amount: amount '1e30' is beyond what the warehouse"
            " holds exactly (below 1e+22)",
        ),
        (
            ["gate", "--period", "2025-03", "--no-suites", "--skip-dbt", "--override", "reconcilation=typo (FIN-1)"],
            "meterline gate: error: override names no check of this gate: reconcilation; checks are:"
            " content_hash, dq.events_rejected, dq.fact_cost_allocated, dq.freshness, dq.invoice_coverage,"
            " dq.invoice_drafts, dq.usage_hourly, plausibility, pricing_configuration, reconciliation",
        ),
        (
            ["invoice", "void", "--invoice", "INV-2025-999999", "--reason", "duplicate", "--actor", "ops:ann"],
            "meterline invoice: error: no issued invoice INV-2025-999999 (see billing.invoices)",
        ),
        (
            ["invoice", "credit", "--tenant", "t-9999", "--amount", "5", "--reason", "r", "--actor", "ops:ann"],
            "meterline invoice: error: unknown tenant t-9999 (see raw.catalog_tenants)",
        ),
        (
            ["generate", "payments", "--period", "2025-3"],
            "meterline generate payments: error: argument --period: period '2025-3' is not a month written YYYY-MM"
            " (e.g. 2025-03)",
        ),
    ],
)
def test_a_user_error_is_one_line_and_exit_code_2(argv, line, warehouse_url, capsys):
    with pytest.raises(SystemExit) if "argument" in line else _returns() as outcome:
        code = cli.main(argv)
    code = outcome.value.code if isinstance(outcome, pytest.ExceptionInfo) else code
    out, err = capsys.readouterr()
    assert code == 2
    assert err == line + "\n"
    assert "Traceback" not in out


class _returns:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_the_installed_command_prints_no_traceback(warehouse_url):
    done = subprocess.run(
        [sys.executable, "-m", "meterline.cli", "invoice", "void", "--invoice", "INV-2025-999999", "--reason", "r",
         "--actor", "ops:ann"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert (done.returncode, done.stderr.splitlines()[-1]) == (
        2,
        "meterline invoice: error: no issued invoice INV-2025-999999 (see billing.invoices)",
    )
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_failed_dbt_tests_are_named_with_their_failing_rows(db: psycopg.Connection, warehouse_url):
    db.execute(
        "insert into raw.catalog_subscriptions (subscription_id, tenant_id, plan_id, started_at, source_file)"
        " values ('6f1c2d7e-3b0a-4c55-9a1e-0d2f5b8c4e11', 't-0001', 'no-such-plan', '2025-01-01', 's.csv')"
    )
    with pytest.raises(ChecksFailed) as failed:
        transform.run(
            ["build", "--select", "currencies", "stg_catalog__subscriptions", "stg_catalog__plans",
             "stg_catalog__tenants", "--quiet"],
            warehouse_url,
        )  # fmt: skip
    message = str(failed.value)
    assert message.startswith("dbt build: ")
    assert "relationships_stg_catalog__subscriptions_plan_id" in message and "tenant_id" in message
    assert message.count(": 1 failing rows") == 2  # its plan and its tenant are unknown


def test_an_input_error_fails_an_airflow_task_without_retries():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="period 'x' is not a month"), fail_without_retry():
        raise InputError("period 'x' is not a month written YYYY-MM (e.g. 2025-03)")
    with pytest.raises(KeyError), fail_without_retry():  # anything else keeps its retries
        raise KeyError("a flake")
