"""Where Airflow is in charge, the warehouse is the Airflow connection `warehouse`: tasks resolve
it to a conninfo (meterline.connections) and cosmos maps it to dbt's profile. The DAG runs that
prove it (the tasks and dbt reach the warehouse with WAREHOUSE_URL pointing nowhere) are in
test_warehouse_setup_dag.py and test_transform_warehouse_dag.py."""

from __future__ import annotations

import json

import pytest
import yaml

from meterline import airflow_env, warehouse
from meterline.connections import dbt_profile, dbt_profile_args, warehouse_conninfo

pytestmark = pytest.mark.dags

SOCKET_URL = "postgresql://postgres:@/meterline?host=/srv/warehouse/.s.PGSQL"


def test_the_local_environment_defines_the_connection_from_warehouse_url(monkeypatch, tmp_path):
    """The embedded warehouse (a unix socket, no password) reaches tasks unchanged."""
    env = airflow_env.environment(tmp_path, SOCKET_URL)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", env["AIRFLOW_CONN_WAREHOUSE"])
    assert warehouse.params(warehouse_conninfo()) == warehouse.params(SOCKET_URL)
    assert warehouse.params(warehouse_conninfo()) == {
        "host": "/srv/warehouse/.s.PGSQL",
        "port": "5432",
        "user": "postgres",
        "password": "",
        "dbname": "meterline",
    }


def test_a_uri_connection_with_libpq_extras(monkeypatch):
    """docker-compose's form; the extras PostgresHook hands to libpq are kept, its own are not."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE",
        "postgres://meterline:s%40cret@db.internal:6432/billing?sslmode=require&connect_timeout=5&cursor=dictcursor",
    )
    assert warehouse.params(warehouse_conninfo()) == {
        "host": "db.internal",
        "port": "6432",
        "user": "meterline",
        "password": "s@cret",
        "dbname": "billing",
    }
    from psycopg.conninfo import conninfo_to_dict

    extras = conninfo_to_dict(warehouse_conninfo())
    assert (extras["sslmode"], extras["connect_timeout"]) == ("require", "5") and "cursor" not in extras


def test_cosmos_profile_is_mapped_from_the_connection(monkeypatch):
    """Credentials from the connection, the password only as an environment variable; the rest
    of the target (role, schema, threads, timeout) as profiles.yml writes it."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgres://meterline:pw@db.internal:6432/billing")
    mapping = dbt_profile().profile_mapping
    profile = yaml.safe_load(mapping.get_profile_file_contents("meterline", "warehouse"))
    target = profile["meterline"]["outputs"]["warehouse"]
    assert profile["meterline"]["target"] == "warehouse"
    assert {k: target[k] for k in ("type", "host", "port", "user", "dbname")} == {
        "type": "postgres",
        "host": "db.internal",
        "port": 6432,
        "user": "meterline",
        "dbname": "billing",
    }
    assert dbt_profile_args() == {"role": "meterline_pipeline", "schema": "marts", "threads": 2, "connect_timeout": 10}
    assert {k: target[k] for k in dbt_profile_args()} == dbt_profile_args()
    assert "pw" not in json.dumps(profile) and mapping.env_vars == {"COSMOS_CONN_POSTGRES_PASSWORD": "pw"}


def test_cosmos_profile_without_a_password(monkeypatch, tmp_path):
    """The embedded warehouse's connection has no password: dbt gets an empty one."""
    env = airflow_env.environment(tmp_path, SOCKET_URL)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", env["AIRFLOW_CONN_WAREHOUSE"])
    assert dbt_profile().profile_mapping.env_vars == {"COSMOS_CONN_POSTGRES_PASSWORD": ""}


def test_the_alert_webhook_url_defines_the_alert_connection(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_ALERT_WEBHOOK", raising=False)
    monkeypatch.setenv("METERLINE_ALERT_WEBHOOK_URL", "https://alerts.example/hooks/meterline")
    env = airflow_env.environment(tmp_path, SOCKET_URL)
    connection = {"conn_type": "http", "host": "https://alerts.example/hooks/meterline"}
    assert json.loads(env["AIRFLOW_CONN_ALERT_WEBHOOK"]) == connection
    # a connection defined otherwise wins
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", "http://elsewhere")
    assert airflow_env.environment(tmp_path, SOCKET_URL)["AIRFLOW_CONN_ALERT_WEBHOOK"] == "http://elsewhere"
