"""`meterline quality|gate|emit|invoice ...`: the monthly close's last steps and the corrections,
for operators at a terminal. Each command exits non-zero when the action was refused or the
period is blocked, and prints what to do next."""

from __future__ import annotations

import argparse
from decimal import Decimal


def _say(message: str) -> None:
    print(f"[meterline] {message}", flush=True)


def period_arg(value: str) -> str:
    """argparse type: a billing month YYYY-MM."""
    from meterline.period import Period

    try:
        return Period.parse(value).label
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def amount_arg(value: str) -> Decimal:
    """argparse type: a finite amount the warehouse holds exactly (not NaN, not 1e30)."""
    from meterline.money import parse_amount

    try:
        return parse_amount(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _override(text: str) -> tuple[str, str]:
    name, sep, why = text.partition("=")
    if not sep or not name.strip() or not why.strip():
        raise argparse.ArgumentTypeError("an override is CHECK='justification'")
    return name.strip(), why.strip()


def cmd_quality(args: argparse.Namespace) -> int:
    from meterline import warehouse
    from meterline.quality import run_suites

    run = run_suites(warehouse.url(), args.period, dbt_select=None if args.skip_dbt else args.dbt_select)
    for r in run.failures:
        _say(f"FAILED {r.suite}.{r.expectation}: {r.observed_value} {r.failing_keys or ''}")
    _say(f"{run.dq_run_id}: {len(run.results)} expectations, {len(run.failures)} failed ({run.seconds:.1f}s)")
    return 0 if run.success else 1


def cmd_gate(args: argparse.Namespace) -> int:
    from meterline import warehouse
    from meterline.invoicing.gate import evaluate_gate
    from meterline.quality import run_suites

    url = warehouse.url()
    if not args.no_suites:
        run_suites(url, args.period, dbt_select=None if args.skip_dbt else args.dbt_select)
    decision = evaluate_gate(
        url, args.period, dict(args.override or []), actor=args.actor, require_dbt=not args.skip_dbt
    )
    print(decision.summary())
    return 0 if decision.passed else 1


def cmd_emit(args: argparse.Namespace) -> int:
    from meterline import warehouse
    from meterline.invoicing.emit import emit
    from meterline.invoicing.gate import GateFailed

    try:
        result = emit(warehouse.url(), args.period, args.outbox, actor=args.actor)
    except GateFailed as exc:
        _say(str(exc))
        return 1
    _say(result.summary())
    for draft, reasons in sorted(result.blocked.items()):
        _say(f"  blocked {draft}: {'; '.join(reasons)}")
    if not result.complete:
        return 1
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    from meterline import close, warehouse

    check, why = args.override if args.override else (None, None)
    run = close.run_close(
        warehouse.url(), args.period, actor=args.actor, override_check=check, justification=why,
        outbox_url=args.outbox,
    )  # fmt: skip
    for step, counts in run.steps.items():
        _say(f"{step}: {counts}")
    if run.failed_step:
        _say(f"{run.failed_step} stopped the close of {args.period}:\n{run.error}")
    _say(f"close report: {run.report}")
    return 0 if run.succeeded else 1


def cmd_invoice(args: argparse.Namespace) -> int:
    from meterline import warehouse
    from meterline.invoicing import corrections

    params = {"action": args.action.replace("-", "_"), "actor": args.actor}
    params |= {param: getattr(args, param) for param in _FLAGS if hasattr(args, param)}
    # A refused correction raises InputError: one line, exit 2.
    done = corrections.apply(warehouse.url(), params, outbox_url=getattr(args, "outbox", None))
    _say(f"{done.action} {done.resource} {' '.join(done.documents)}".rstrip())
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """The document as the HTML page its PDF is rendered from, to open in a browser."""
    import json
    from pathlib import Path

    from meterline.errors import InputError
    from meterline.invoicing import documents

    source = Path(args.document)
    if source.suffix == ".json":
        try:
            data = json.loads(source.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{source}: not a document's JSON ({exc})") from None
    else:
        from meterline import warehouse
        from meterline.invoicing.emit import load_document

        with warehouse.connect(warehouse.url()) as conn:
            try:
                data = documents.content(load_document(conn, args.document))
            except LookupError as exc:
                raise InputError(f"{exc} (give an invoice number or a document's .json file)") from None
    output = Path(args.output or f"{data['number']}.html")
    output.write_text(documents.render_html(data))
    _say(f"{data['number']}: {output.resolve()}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add the commands to the `meterline` parser."""
    from meterline.quality.suites import DBT_BILLING_SELECT

    def period_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--period", type=period_arg, required=True, help="the billing month, YYYY-MM")

    def suite_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--skip-dbt", action="store_true", help="do not run (or require) the dbt tests")
        parser.add_argument("--dbt-select", default=DBT_BILLING_SELECT, help="the billing models whose tests run")

    quality = commands.add_parser("quality", help="run the data-quality suites for a period")
    period_args(quality)
    suite_args(quality)
    quality.set_defaults(func=cmd_quality)

    gate = commands.add_parser("gate", help="run the suites and the invoice gate for a period")
    period_args(gate)
    suite_args(gate)
    gate.add_argument("--no-suites", action="store_true", help="use the latest suite results as they are")
    gate.add_argument("--override", action="append", type=_override, metavar="CHECK='why'")
    gate.add_argument("--actor", default="cli:gate", help="who decides (recorded with overrides)")
    gate.set_defaults(func=cmd_gate)

    close = commands.add_parser(
        "close",
        help="the monthly close of a period: build, suites, gate, emit, report (as close_billing_period does)",
    )
    period_args(close)
    close.add_argument("--override", type=_override, metavar="CHECK='why'", help="release one failing gate check")
    close.add_argument("--actor", default="cli:close", help="who closes (recorded with the decision and issues)")
    close.add_argument("--outbox", default=None, help="OUTBOX_URL by default")
    close.set_defaults(func=cmd_close)

    emit = commands.add_parser("emit", help="issue the drafts the latest gate run lets through")
    period_args(emit)
    emit.add_argument("--outbox", default=None, help="OUTBOX_URL by default")
    emit.add_argument("--actor", default="cli:emit")
    emit.set_defaults(func=cmd_emit)

    # One subcommand per correction, each asking for what it needs (the table in actions.py).
    from meterline.invoicing.actions import ACTIONS, PARAMS

    invoice = commands.add_parser("invoice", help=f"corrections: {', '.join(a.replace('_', '-') for a in ACTIONS)}")
    actions = invoice.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, action in ACTIONS.items():
        one = actions.add_parser(name.replace("_", "-"), help=action.summary, description=action.summary)
        for param in (*action.needs, *action.takes):
            one.add_argument(
                _FLAGS[param], dest=param, required=param in action.needs, help=PARAMS[param],
                type=amount_arg if param == "amount" else str, default="" if param == "reason" else None,
            )  # fmt: skip
        one.add_argument("--actor", required=True, help="who asks (recorded in the audit log)")
        if action.documents:
            one.add_argument("--outbox", default=None, help="where the documents go; OUTBOX_URL by default")
        one.set_defaults(func=cmd_invoice)
    preview = actions.add_parser(
        "preview",
        help="write an invoice or credit note as the HTML page its PDF is rendered from (open it in a browser)",
    )
    preview.add_argument("document", help="an issued invoice's number, or a document's .json file from the outbox")
    preview.add_argument("--output", "-o", default=None, help="the HTML file to write (default: <number>.html)")
    preview.set_defaults(func=cmd_preview)


# The command line's names for the correction's params.
_FLAGS = {
    "invoice_number": "--invoice",
    "tenant_id": "--tenant",
    "amount": "--amount",
    "currency": "--currency",
    "reason": "--reason",
}
