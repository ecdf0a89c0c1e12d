"""The invoice gate for period P: decide which drafts may leave, and say why the others may not.

Checks have a scope (DESIGN.md "The gate and emission"):
- period-wide checks block every invoice of P: the data-quality suites on usage, allocation,
  coverage, rejection rate, freshness and the dbt tests on the billing models, and the
  reconciliation (no `recon_summary` row of P may be `failed`);
- invoice-level checks block their draft only: a pricing configuration error dbt reports in
  `invoice_drafts`, a draft dbt holds for review (`needs_review`: implausible or unrepresentable
  figures), or a draft failing its own expectations (suite `invoice_drafts`).

Every check evaluated is one `ops.invoice_gate` row of the run (failing invoice-level checks one
row per draft they block); `invoice_header` reads them to show drafts as blocked with their
reasons. An operator may override one named check for one period with a justification: the row
stays failed with `overridden = true`, and the override is audited.

The gate binds its decision to the data it read: `ops.invoice_gate_inputs` keeps the period's
input watermarks (`watermarks()`) and `ops.invoice_gate_drafts` each draft's fingerprint
(`invoice_drafts.content_hash`). The emitter issues a draft only while both are unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from meterline import audit, warehouse
from meterline.errors import InputError
from meterline.invoicing import integrity
from meterline.period import Period
from meterline.quality.suites import DBT_SUITE, GX_SUITES

PRICING_CHECK = "pricing_configuration"
PLAUSIBILITY_CHECK = "plausibility"
RECON_CHECK = "reconciliation"

# What the period's decision depends on beyond the drafts themselves: the event files of the
# period and after (late events), the rows they loaded and rejected, the live CUR deliveries of
# the period, the catalog load and the manual credits. Cheap ledgers, not the raw rows.
WATERMARKS_SQL = """
select jsonb_build_object(
    'event_files', (select count(*) from raw.ingested_files
                    where feed = 'events' and partition_date >= %(start)s),
    'events_loaded_through', (select max(loaded_at) from raw.ingested_files
                              where feed = 'events' and partition_date >= %(start)s),
    'events_loaded', (select coalesce(sum(rows_loaded), 0) from raw.ingested_files
                      where feed = 'events' and partition_date >= %(start)s and partition_date < %(end)s),
    'events_rejected', (select count(*) from raw.events_rejected
                        where partition_date >= %(start)s and partition_date < %(end)s),
    'cur_deliveries', (select coalesce(jsonb_agg(delivery_id order by delivery_id), '[]'::jsonb)
                       from raw.cur_deliveries
                       where billing_period = %(start)s and status = 'loaded' and superseded_by is null),
    'catalog_loaded_at', (select max(loaded_at) from (
                            select max(loaded_at) as loaded_at from raw.catalog_subscriptions
                            union all select max(loaded_at) from raw.catalog_plans
                            union all select max(loaded_at) from raw.catalog_price_components
                            union all select max(loaded_at) from raw.catalog_tax_rates
                            union all select max(loaded_at) from raw.catalog_credits) as loads),
    'credit_grants', (select count(*) from billing.credit_grants)
)
"""


class GateFailed(RuntimeError):
    """The period is blocked; the message says which checks, which rows and where to look."""


@dataclass
class GateCheck:
    name: str
    scope: str  # period | invoice
    passed: bool
    reason: str | None = None
    invoice_id: str | None = None  # invoice scope: the draft it blocks
    overridden: bool = False

    @property
    def blocks(self) -> bool:
        return not self.passed and not self.overridden


@dataclass
class GateDecision:
    run_id: str
    period: Period
    checks: list[GateCheck]
    decided_at: datetime | None = None
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def period_failures(self) -> list[GateCheck]:
        return [c for c in self.checks if c.scope == "period" and c.blocks]

    @property
    def passed(self) -> bool:
        """The period passes: its invoices may be emitted, except those blocked on their own."""
        return not self.period_failures

    @property
    def blocked_invoices(self) -> dict[str, list[str]]:
        blocked: dict[str, list[str]] = {}
        for check in self.checks:
            if check.scope == "invoice" and check.invoice_id and check.blocks:
                blocked.setdefault(check.invoice_id, []).append(f"{check.name}: {check.reason}")
        return blocked

    def summary(self) -> str:
        """What an operator reads in the task log."""
        head = f"gate {self.run_id} for {self.period}: "
        overridden = [c for c in self.checks if c.overridden]
        lines = []
        if self.passed:
            blocked = self.blocked_invoices
            lines.append(head + f"PASSED ({len(blocked)} invoice(s) blocked on their own)")
            lines += [f"  blocked {draft}: {'; '.join(reasons)}" for draft, reasons in sorted(blocked.items())]
        else:
            lines.append(head + f"BLOCKED: {len(self.period_failures)} period-wide check(s) failed; nothing is emitted")
            lines += [f"  {c.name}: {c.reason}" for c in self.period_failures]
            lines.append(
                f"  fix the data and re-run (meterline gate --period {self.period}), or override one check with"
                f" a justification (meterline gate --period {self.period} --override CHECK='why')"
            )
        lines += [
            f"  overridden {c.name}{' for ' + c.invoice_id if c.invoice_id else ''}: {c.reason}" for c in overridden
        ]
        lines.append(f"  all rows: select * from ops.invoice_gate where run_id = '{self.run_id}'")
        return "\n".join(lines)


def _short(value: object, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _relation_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select to_regclass(%s)", [name]).fetchone()[0] is not None


def _dq_checks(conn: psycopg.Connection, period: Period, required: tuple[str, ...]) -> list[GateCheck]:
    latest = dict(
        conn.execute(
            "select distinct on (suite) suite, dq_run_id from ops.dq_results where period_start = %s"
            " order by suite, run_at desc, dq_result_id desc",
            [period.start],
        ).fetchall()
    )
    checks: list[GateCheck] = []
    for suite in required:
        run_id = latest.get(suite)
        if run_id is None:
            checks.append(
                GateCheck(
                    f"dq.{suite}",
                    "period",
                    False,
                    f"no data-quality results for suite {suite} in {period}: run the suites first"
                    f" (meterline quality --period {period})",
                )
            )
            continue
        rows = conn.execute(
            "select expectation, scope, success, observed_value, failing_keys, detail from ops.dq_results"
            " where dq_run_id = %s and suite = %s order by dq_result_id",
            [run_id, suite],
        ).fetchall()
        for expectation, scope, success, observed, keys, detail in rows:
            name = f"dq.{suite}.{expectation}"
            where = f"ops.dq_results where dq_run_id = '{run_id}' and expectation = '{expectation}'"
            if success:
                checks.append(GateCheck(name, scope, True))
            elif scope == "invoice":
                for key in keys:
                    checks.append(
                        GateCheck(name, "invoice", False, f"draft fails {expectation}; see {where}", invoice_id=key)
                    )
            else:
                explanation = detail.get("reason") or detail.get("message") or detail.get("error")
                observed_text = f"observed {_short(observed)}" if observed is not None else ""
                checks.append(
                    GateCheck(
                        name,
                        "period",
                        False,
                        "; ".join(x for x in (f"{suite} {expectation} failed", explanation, observed_text) if x)
                        + f"; see {where}",
                    )
                )
    return checks


def _recon_check(conn: psycopg.Connection, period: Period) -> GateCheck:
    if not _relation_exists(conn, "marts.recon_summary"):
        return GateCheck(RECON_CHECK, "period", False, "marts.recon_summary does not exist: build the reconciliation")
    rows = conn.execute(
        "select recon_id, service, raw_cost, allocated_cost, variance_pct, status, currency, status_reason"
        " from marts.recon_summary where period_start = %s order by service, currency",
        [period.start],
    ).fetchall()
    if not rows:
        return GateCheck(
            RECON_CHECK, "period", False, f"no marts.recon_summary row for {period}: the reconciliation has not run"
        )
    failed = [r for r in rows if r[5] == "failed"]
    if not failed:
        return GateCheck(RECON_CHECK, "period", True)
    recon_id = failed[0][0]
    reasons = sorted({r[7] for r in failed if r[7]})
    detail = "; ".join(
        [
            ", ".join(
                f"{svc} variance {pct} % (raw {raw}, allocated {alloc}{'' if cur == 'USD' else ' ' + cur})"
                for _, svc, raw, alloc, pct, _, cur, why in failed
                if not why
            ),
            *reasons,
        ]
    ).strip("; ")
    return GateCheck(
        RECON_CHECK,
        "period",
        False,
        f"{len(failed)} recon_summary row(s) failed: {detail}; see marts.recon_summary and"
        f" marts.recon_exceptions where recon_id = '{recon_id}'",
    )


def _draft_checks(conn: psycopg.Connection, period: Period) -> list[GateCheck]:
    """Drafts dbt flags in invoice_drafts (not issued yet): a pricing configuration error (a
    missing price or tax rate), or figures held for review (plausibility)."""
    if not _relation_exists(conn, "marts.invoice_drafts"):
        missing = "marts.invoice_drafts does not exist: build the invoices"
        return [GateCheck(name, "period", False, missing) for name in (PRICING_CHECK, PLAUSIBILITY_CHECK)]
    rows = conn.execute(
        "select d.invoice_id, d.has_pricing_error, d.pricing_errors, d.needs_review, d.plausibility_errors"
        " from marts.invoice_drafts d where d.period_start = %s and (d.has_pricing_error or d.needs_review)"
        " and not exists (select 1 from billing.invoices i where i.subscription_id = d.subscription_id"
        "  and i.period_start = d.period_start and i.status <> 'void')"
        " order by d.invoice_id",
        [period.start],
    ).fetchall()
    where = "see marts.invoice_drafts and marts.invoice_draft_lines where invoice_id = '{}'"
    checks = []
    for draft, has_pricing_error, pricing_errors, needs_review, plausibility_errors in rows:
        if has_pricing_error:
            reason = f"{(pricing_errors or 'pricing configuration error').strip()}; {where.format(draft)}"
            checks.append(GateCheck(PRICING_CHECK, "invoice", False, reason, invoice_id=draft))
        if needs_review:
            reason = f"held for review: {plausibility_errors}; {where.format(draft)}"
            checks.append(GateCheck(PLAUSIBILITY_CHECK, "invoice", False, reason, invoice_id=draft))
    for name in (PRICING_CHECK, PLAUSIBILITY_CHECK):
        if not any(c.name == name for c in checks):
            checks.append(GateCheck(name, "invoice", True))
    return checks


def watermarks(conn: psycopg.Connection, period: Period) -> dict[str, object]:
    """The period's input watermarks now (WATERMARKS_SQL), as JSON-ready values."""
    (marks,) = conn.execute(WATERMARKS_SQL, {"start": period.start, "end": period.end}).fetchone()
    return marks


@dataclass(frozen=True)
class GateInputs:
    """What a gate run read: the period's watermarks and each draft's fingerprint."""

    watermarks: dict[str, object]
    hashes: dict[str, str]  # draft id -> invoice_drafts.content_hash


def gate_inputs(conn: psycopg.Connection, run_id: str) -> GateInputs | None:
    row = conn.execute("select watermarks from ops.invoice_gate_inputs where run_id = %s", [run_id]).fetchone()
    if row is None:
        return None
    hashes = dict(
        conn.execute("select invoice_id, content_hash from ops.invoice_gate_drafts where run_id = %s", [run_id])
    )
    return GateInputs(row[0], hashes)


def changed_inputs(before: dict[str, object], now: dict[str, object]) -> list[str]:
    """What moved between two watermark readings, readable: `event_files 31 -> 32`."""
    return [f"{key} {before.get(key)} -> {now.get(key)}" for key in sorted(now) if before.get(key) != now.get(key)]


def latest_decision(conn: psycopg.Connection, period: str | Period) -> GateDecision | None:
    """The most recent gate run of the period, as recorded in ops.invoice_gate."""
    period = Period.parse(period)
    head = conn.execute(
        "select run_id, max(decided_at) from ops.invoice_gate where period_start = %s"
        " group by run_id order by max(decided_at) desc, run_id desc limit 1",
        [period.start],
    ).fetchone()
    if head is None:
        return None
    rows = conn.execute(
        "select check_name, scope, passed, reason, invoice_id, overridden from ops.invoice_gate"
        " where run_id = %s order by gate_row_id",
        [head[0]],
    ).fetchall()
    return GateDecision(head[0], period, [GateCheck(*row) for row in rows], decided_at=head[1])


def evaluate_gate(
    conninfo: str,
    period: str | Period,
    overrides: Mapping[str, str] | None = None,
    *,
    actor: str = "gate",
    require_dbt: bool = True,
) -> GateDecision:
    """Evaluate every check for `period`, record the decision, and return it (never raises on a
    blocked period: call `require_pass` where a failure must fail the task)."""
    period = Period.parse(period)
    overrides = dict(overrides or {})
    for check_name, justification in overrides.items():
        if not (justification or "").strip():
            raise InputError(f"override of {check_name} needs a justification")
    required = GX_SUITES + ((DBT_SUITE,) if require_dbt else ())
    run_id = f"gate-{period.label}-{uuid.uuid4().hex[:12]}"
    with warehouse.transaction(conninfo) as conn:
        # One gate run per period at a time: the rows of a run appear together.
        conn.execute("select pg_advisory_xact_lock(hashtext('meterline.gate'), hashtext(%s))", [period.label])
        checks = [*_dq_checks(conn, period, required), _recon_check(conn, period)]
        checks += _draft_checks(conn, period)
        checks.append(integrity.content_hash_check(conn))
        names = {c.name for c in checks}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InputError(
                f"override names no check of this gate: {', '.join(unknown)}; checks are: {', '.join(sorted(names))}"
            )
        for check in checks:
            if check.name in overrides and not check.passed:
                check.overridden = True
                check.reason = f"{check.reason} [overridden by {actor}: {overrides[check.name]}]"
        (decided_at,) = conn.execute("select now()").fetchone()
        for check in checks:
            conn.execute(
                "insert into ops.invoice_gate (run_id, period_start, check_name, scope, invoice_id, passed,"
                " overridden, reason, decided_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    run_id,
                    period.start,
                    check.name,
                    check.scope,
                    check.invoice_id,
                    check.passed,
                    check.overridden,
                    check.reason,
                    decided_at,
                ],
            )
        # What this decision covers: the inputs read now and each draft's fingerprint.
        conn.execute(
            "insert into ops.invoice_gate_inputs (run_id, period_start, watermarks, decided_at)"
            " values (%s, %s, %s, %s)",
            [run_id, period.start, Jsonb(watermarks(conn, period)), decided_at],
        )
        if _relation_exists(conn, "marts.invoice_drafts"):
            conn.execute(
                "insert into ops.invoice_gate_drafts (run_id, invoice_id, content_hash)"
                " select %s, invoice_id, content_hash from marts.invoice_drafts where period_start = %s",
                [run_id, period.start],
            )
        decision = GateDecision(run_id, period, checks, decided_at=decided_at, overrides=overrides)
        for check_name, justification in sorted(overrides.items()):
            overridden = [c for c in checks if c.name == check_name and c.overridden]
            audit.record(
                conn,
                actor=actor,
                action="gate.check_overridden",
                resource=f"period:{period}",
                metadata={
                    "run_id": run_id,
                    "check_name": check_name,
                    "justification": justification,
                    "rows_overridden": len(overridden),
                    "invoice_ids": [c.invoice_id for c in overridden if c.invoice_id],
                },
            )
        audit.record(
            conn,
            actor=actor,
            action="gate.passed" if decision.passed else "gate.blocked",
            resource=f"period:{period}",
            metadata={
                "run_id": run_id,
                "period_failures": [c.name for c in decision.period_failures],
                "blocked_invoices": sorted(decision.blocked_invoices),
                "overrides": sorted(overrides),
            },
        )
    return decision  # its summary is the caller's to show (the CLI prints it, the close logs it)


def require_pass(decision: GateDecision) -> GateDecision:
    """Raise GateFailed (the task fails, with the operator's message) unless the period passed."""
    if not decision.passed:
        raise GateFailed(decision.summary())
    return decision
