"""The warehouse bootstrap on a real PostgreSQL: schemas, roles, grants, idempotence."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from meterline import warehouse

pytestmark = pytest.mark.integration


def test_bootstrap_is_idempotent(warehouse_url):
    before = warehouse.health(warehouse_url)
    assert warehouse.bootstrap(warehouse_url) == []  # the template already applied everything
    assert warehouse.health(warehouse_url) == before
    assert before["ops"] >= 2  # schema_migrations, audit_log, and the ledgers later migrations add


def test_bootstrap_on_a_new_database_creates_it(server_url):
    name = "mlt_bootstrap_new"
    warehouse.drop_database(server_url, name)
    conninfo = warehouse.with_database(server_url, name)
    try:
        applied = warehouse.bootstrap(conninfo)
        assert applied[0] == "001_ops.sql"
        with warehouse.connect(conninfo) as conn:
            owners = dict(
                conn.execute(
                    "select nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname = any(%s)",
                    [list(warehouse.SCHEMAS)],
                ).fetchall()
            )
        # billing is its owner role's (090_billing_owner.sql), every other schema the pipeline's.
        assert owners == {s: "meterline_pipeline" for s in warehouse.SCHEMAS} | {"billing": "meterline_billing_owner"}
    finally:
        warehouse.drop_database(server_url, name)


def test_concurrent_bootstraps_apply_each_migration_once(server_url):
    name = "mlt_bootstrap_race"
    warehouse.drop_database(server_url, name)
    conninfo = warehouse.with_database(server_url, name)
    warehouse.create_database(server_url, name)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run():
        try:
            results.append(warehouse.bootstrap(conninfo))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(len(r) for r in results)[:2] == [0, 0]  # the others waited, then found all applied
        assert sum(len(r) for r in results) == len(warehouse._migrations())
    finally:
        warehouse.drop_database(server_url, name)


def test_analyst_reads_marts_and_billing_only(db):
    db.execute("create table marts.t_report (x int)")
    db.execute("insert into marts.t_report values (1)")
    db.execute("create table raw.t_secret (x int)")
    db.execute("set role meterline_analyst")
    assert db.execute("select x from marts.t_report").fetchall() == [(1,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("select x from raw.t_secret")
    db.execute("reset role")
    db.execute("set role meterline_analyst")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("insert into marts.t_report values (2)")


def test_operator_and_analyst_logins_have_the_runbook_search_path(db, warehouse_url):
    db.execute("create table ops.t_runbook (x int)")
    db.execute("insert into ops.t_runbook values (7)")
    with psycopg.connect(warehouse_url, user="meterline_operator") as op:
        assert op.execute("show search_path").fetchone()[0] == "marts, billing, ops, raw"
        assert op.execute("select x from t_runbook").fetchall() == [(7,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            op.execute("delete from t_runbook")
    with psycopg.connect(warehouse_url, user="meterline_analyst") as analyst:
        assert analyst.execute("show search_path").fetchone()[0] == "marts, billing"


@pytest.mark.skipif(not warehouse.is_embedded(), reason="settings of the embedded server only")
def test_embedded_server_is_set_for_bulk_loads(server_url):
    """Checkpoints spaced for loads of a million rows and shared buffers that hold the events' key
    index (warehouse.EMBEDDED_SETTINGS): written to the data folder's meterline.conf before the
    server starts, in force on the running server, and not overridden by an ALTER SYSTEM of an
    earlier version. (A server started before they changed shows the old values until
    `meterline warehouse stop`.)"""
    warehouse.url()
    expected = {"shared_buffers": "1GB", "max_wal_size": "4GB", "checkpoint_timeout": "15min"}
    for _ in range(50):  # a reload reaches new sessions within milliseconds, not at once
        with psycopg.connect(warehouse.with_database(server_url, "postgres")) as conn:
            shown = {name: conn.execute(f"show {name}").fetchone()[0] for name in warehouse.EMBEDDED_SETTINGS}
            saved = dict(
                conn.execute("select name, setting from pg_file_settings where sourcefile like '%/meterline.conf'")
            )
            overridden = conn.execute(
                "select name from pg_file_settings where sourcefile like '%%.auto.conf' and name = any(%s)",
                [list(expected)],
            ).fetchall()
        if shown == expected:
            break
        time.sleep(0.1)
    assert shown == expected
    assert saved == expected
    assert overridden == []


@pytest.mark.skipif(not warehouse.is_embedded(), reason="settings of the embedded server only")
def test_a_data_folder_of_an_earlier_version_takes_the_settings_file(tmp_path):
    """An earlier version applied its settings with ALTER SYSTEM, which overrides any file: the
    next start resets those entries. A reloadable setting then follows meterline.conf at once; one
    that only a start applies (shared_buffers) keeps the old value until the next start, and the
    start says so. As an operator runs it: `meterline warehouse url` / `stop`, a data folder of
    its own (METERLINE_HOME)."""
    cli = str(Path(sys.executable).with_name("meterline"))
    env = {k: v for k, v in os.environ.items() if k != "WAREHOUSE_URL"} | {"METERLINE_HOME": str(tmp_path)}

    def start() -> tuple[str, str]:
        done = subprocess.run([cli, "warehouse", "url"], env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip().splitlines()[-1], done.stderr

    def settings(url: str) -> dict[str, str]:
        with psycopg.connect(warehouse.with_database(url, "postgres")) as conn:
            return {name: conn.execute(f"show {name}").fetchone()[0] for name in warehouse.EMBEDDED_SETTINGS}

    expected = {"shared_buffers": "1GB", "max_wal_size": "4GB", "checkpoint_timeout": "15min"}
    try:
        url, _ = start()
        assert settings(url) == expected  # a new data folder: in force from its first start
        with psycopg.connect(warehouse.with_database(url, "postgres"), autocommit=True) as conn:
            conn.execute("alter system set max_wal_size = '2GB'")
            conn.execute("alter system set shared_buffers = '128MB'")
        subprocess.run([cli, "warehouse", "stop"], env=env, capture_output=True, check=True)

        url, log = start()
        for _ in range(50):  # the reload reaches new sessions within milliseconds, not at once
            if (shown := settings(url))["max_wal_size"] == "4GB":
                break
            time.sleep(0.1)
        assert shown == expected | {"shared_buffers": "128MB"}
        assert "runs with shared_buffers = 128MB instead of 1GB until it restarts" in log
        with psycopg.connect(warehouse.with_database(url, "postgres")) as conn:
            assert (
                conn.execute("select name from pg_file_settings where sourcefile like '%.auto.conf'").fetchall() == []
            )
        subprocess.run([cli, "warehouse", "stop"], env=env, capture_output=True, check=True)

        url, log = start()
        assert settings(url) == expected
        assert "until it restarts" not in log
    finally:
        subprocess.run([cli, "warehouse", "stop"], env=env, capture_output=True)
