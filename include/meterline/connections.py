"""The warehouse as Airflow knows it: the connection `warehouse`, for tasks and for cosmos.

Where Airflow is in charge, the connection is the one source of the warehouse's address and
credentials (an operator changes it in the UI, a secrets backend or `AIRFLOW_CONN_WAREHOUSE`);
tasks resolve it here and hand a libpq conninfo to the `meterline` functions, which know nothing
of Airflow (the CLI calls the same functions with `WAREHOUSE_URL`). Locally and in the tests
`airflow_env.environment()` defines the connection from `WAREHOUSE_URL`, so nothing is set by hand.

Light to import: Airflow's provider and cosmos are imported when called, from a task or a DAG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cosmos import ProfileConfig

WAREHOUSE_CONN_ID = "warehouse"
# What the dbt target takes from the connection; the rest of profiles.yml's `warehouse` target
# (role, schema, threads, timeouts) is the project's and is kept as written there.
_CONNECTION_FIELDS = {"type", "host", "port", "user", "password", "dbname"}


def warehouse_conninfo(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """The connection as a libpq conninfo, the way PostgresHook connects: host (a socket folder
    for the embedded warehouse), port, login, password, the `schema` field as the database, and
    the extras PostgresHook passes to libpq (sslmode, connect_timeout, ...)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from psycopg.conninfo import make_conninfo

    hook = PostgresHook(postgres_conn_id=conn_id)
    conn = hook.connection
    params = {
        "host": conn.host,
        "port": conn.port,
        "user": conn.login,
        "password": conn.password,
        "dbname": conn.schema,
    }
    params |= {k: v for k, v in conn.extra_dejson.items() if k not in hook.ignored_extra_options}
    return make_conninfo(**{k: str(v) for k, v in params.items() if v not in (None, "")})


def dbt_profile_args() -> dict[str, object]:
    """profiles.yml's `warehouse` target without what the connection supplies."""
    import yaml

    from meterline.transform import project_dir

    profiles = yaml.safe_load((project_dir() / "profiles.yml").read_text())
    target = profiles["meterline"]["outputs"]["warehouse"]
    return {k: v for k, v in target.items() if k not in _CONNECTION_FIELDS}


def dbt_profile(conn_id: str = WAREHOUSE_CONN_ID) -> ProfileConfig:
    """cosmos's dbt profile for the `warehouse` target, mapped from the Airflow connection when
    the task runs (cosmos passes the password to dbt as an environment variable)."""
    from cosmos import ProfileConfig
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    class WarehouseProfileMapping(PostgresUserPasswordProfileMapping):
        """cosmos's mapping, also for a connection without a password: the embedded warehouse
        (a unix socket, trust authentication), for which dbt, whose profile needs one, gets ''."""

        def get_dbt_value(self, name: str):
            value = super().get_dbt_value(name)
            return "" if name == "password" and value is None else value

    return ProfileConfig(
        profile_name="meterline",
        target_name="warehouse",
        profile_mapping=WarehouseProfileMapping(conn_id=conn_id, profile_args=dbt_profile_args()),
    )
