"""Settings and URL handling, without a database."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from meterline import airflow_env, warehouse
from meterline.config import settings

pytestmark = pytest.mark.unit

SOCKET_URL = "postgresql://postgres:@/meterline?host=/srv/pg"


def test_defaults(monkeypatch):
    for name in ("WAREHOUSE_URL", "LANDING_URL", "OUTBOX_URL", "METERING_SIGNING_KEY", "TENANT_TAG_KEY"):
        monkeypatch.delenv(name, raising=False)
    s = settings()
    assert s.warehouse_url is None
    assert s.landing_url.endswith("data/landing")
    assert s.outbox_url.endswith("data/outbox")
    assert s.signing_key is None
    assert s.tenant_tag_key == "user:tenant_id"
    assert (s.recon_warning_pct, s.recon_failure_pct, s.event_rejection_pct) == (
        Decimal("0.5"),
        Decimal("1"),
        Decimal("1"),
    )


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("LANDING_URL", "s3://bucket/landing")
    monkeypatch.setenv("RECON_FAILURE_PCT", "2.5")
    s = settings()
    assert s.landing_url == "s3://bucket/landing"
    assert s.recon_failure_pct == Decimal("2.5")


def test_params_of_a_socket_url():
    assert warehouse.params(SOCKET_URL) == {
        "host": "/srv/pg",
        "port": "5432",
        "user": "postgres",
        "password": "",
        "dbname": "meterline",
    }


def test_with_database_keeps_server_and_credentials():
    other = warehouse.params(warehouse.with_database("postgresql://u:s3cret@db.internal:6432/meterline", "x"))
    assert other == {"host": "db.internal", "port": "6432", "user": "u", "password": "s3cret", "dbname": "x"}


def test_sqlalchemy_url_for_socket_and_tcp():
    assert warehouse.sqlalchemy_url(SOCKET_URL) == "postgresql+psycopg://postgres@/meterline?host=%2Fsrv%2Fpg"
    assert warehouse.sqlalchemy_url("postgresql://u:p@h:6432/d") == "postgresql+psycopg://u:p@h:6432/d"


def test_airflow_connection_is_json_with_the_socket_host():
    assert json.loads(airflow_env.warehouse_connection(SOCKET_URL)) == {
        "conn_type": "postgres",
        "host": "/srv/pg",
        "port": 5432,
        "login": "postgres",
        "password": "",
        "schema": "meterline",
    }
