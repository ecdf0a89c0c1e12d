"""Loading the processor's exports under `LANDING_URL/payments/` into `billing.payment_txn`,
and matching them to issued invoices (`meterline.payments.match`), in one transaction.

- A file already recorded in `raw.payment_files` (same path and sha256) is skipped; a changed
  file is read again. Paths are recorded relative to the landing zone.
- A payment state (payment_id, status) already loaded, from any file, is a duplicate and is
  counted, not loaded again: a duplicate export file changes nothing.
- The same key stated again with another invoice, amount or currency is a conflicting
  statement: the row is rejected (file, line, what it conflicts with) and the payment is a
  `conflicting_statements` mismatch. Stated both ways within one load, it is applied to no
  invoice (which amount was paid is in dispute, so the invoice's status follows only the
  undisputed payments); contradicting a statement loaded earlier, the earlier decision stands
  and the mismatch says so.
- A bad row goes to `raw.payments_rejected` with its file, line and reason; the rest loads.
  A file that cannot be read at all is named in the result and not recorded, so it is read
  again once fixed; the other files still load.
- Every invoice moved to `paid` writes `invoice.paid` to `ops.audit_log`; every mismatch is a
  `billing.payment_mismatches` row (shown in `marts.recon_exceptions`, category Payment), and
  each one settled later writes `payment_mismatch.resolved`. Both changes are made by the
  audited functions `billing.mark_invoice_paid` and `billing.resolve_payment_mismatch`: the
  pipeline cannot update billing rows itself.

Loaders queue on an advisory lock, so two never decide on the same invoice at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from meterline import warehouse
from meterline.landing import Zone, landing
from meterline.payments import PREFIX, SUFFIXES
from meterline.payments.match import Decisions, Earlier, Invoice, Mismatch, decide
from meterline.payments.read import Payment, Rejected, UnreadableExport, export_format, read_export

log = logging.getLogger(__name__)
ACTOR = "meterline.payments"


@dataclass
class FileResult:
    path: str
    checksum: str
    skipped: bool = False
    error: str | None = None
    io_error: bool = False  # the landing zone did not give the file (a retry may), not a bad export
    rows_read: int = 0
    rows_loaded: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)


@dataclass
class LoadResult:
    files: list[FileResult] = field(default_factory=list)
    paid: list[str] = field(default_factory=list)  # invoice numbers moved to paid by this load
    mismatches: list[Mismatch] = field(default_factory=list)
    resolved: int = 0

    @property
    def unreadable(self) -> list[str]:
        return [f.error for f in self.files if f.error]

    @property
    def retryable(self) -> bool:
        return any(f.io_error for f in self.files)

    def counts(self) -> dict[str, int]:
        read = [f for f in self.files if not f.skipped and not f.error]
        return {
            "files_read": len(read),
            "files_skipped": sum(f.skipped for f in self.files),
            "files_unreadable": len(self.unreadable),
            "rows_read": sum(f.rows_read for f in read),
            "rows_loaded": sum(f.rows_loaded for f in read),
            "duplicates": sum(f.duplicates for f in read),
            "rejected": sum(len(f.rejected) for f in read),
            "invoices_paid": len(self.paid),
            "mismatches": len(self.mismatches),
            "mismatches_resolved": self.resolved,
        }

    def summary(self) -> str:
        c = self.counts()
        reasons = Counter(m.reason for m in self.mismatches)
        text = (
            f"payments: {c['files_read']} files read, {c['files_skipped']} skipped; {c['rows_read']} rows,"
            f" {c['rows_loaded']} loaded, {c['duplicates']} duplicates, {c['rejected']} rejected;"
            f" {c['invoices_paid']} invoices paid; {c['mismatches']} mismatches"
            + (f" ({', '.join(f'{r} {n}' for r, n in sorted(reasons.items()))})" if reasons else "")
            + f", {c['mismatches_resolved']} resolved"
        )
        if self.unreadable:
            text += f"; unreadable: {'; '.join(self.unreadable)}"
        return text


def _loaded_states(conn: psycopg.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    if not keys:
        return {}
    rows = conn.execute(
        "select t.payment_id, t.status, t.invoice_number, t.amount, t.currency, t.source_file"
        " from billing.payment_txn t join unnest(%s::text[], %s::text[]) as k (payment_id, status)"
        " using (payment_id, status)",
        [[k[0] for k in keys], [k[1] for k in keys]],
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def _conflict(p: Payment, known: tuple) -> str | None:
    invoice_number, amount, currency, source_file = known
    if (invoice_number, Decimal(amount), currency) == (p.invoice_number, p.amount, p.currency):
        return None
    return (
        f"conflicts with {p.status} payment {p.payment_id} loaded from {source_file}"
        f" ({invoice_number}, {amount} {currency})"
    )


def _statement(p: Payment, source_file: str) -> str:
    return f"{p.amount} {p.currency} for {p.invoice_number} ({source_file} line {p.line_no})"


def _conflict_mismatches(
    conn: psycopg.Connection,
    within: dict[tuple[str, str], list[tuple[Payment, str]]],
    after: dict[tuple[str, str], list[tuple[Payment, str]]],
    invoices: dict[str, Invoice],
) -> list[Mismatch]:
    """One `conflicting_statements` mismatch per payment state the exports stated more than one
    way: within this load (`within`: every statement, none applied), or against a state loaded
    before (`after`: the new statements; skipped when that state has a mismatch already)."""
    flagged = {
        (r[0], r[1])
        for r in conn.execute(
            "select m.payment_id, m.status from billing.payment_mismatches m"
            " join unnest(%s::text[], %s::text[]) as k (payment_id, status) using (payment_id, status)",
            [[k[0] for k in after], [k[1] for k in after]],
        )
    }
    out = []
    for key, statements in within.items():
        first = statements[0][0]
        inv = invoices.get(first.invoice_number)
        stated = "; ".join(_statement(p, f) for p, f in statements)
        out.append(
            Mismatch(
                payment_id=key[0], status=key[1], reason="conflicting_statements",
                invoice_number=first.invoice_number, invoice_id=inv.invoice_id if inv else None,
                period_start=inv.period_start if inv else first.paid_at.date().replace(day=1),
                currency=first.currency, amount=max(p.amount for p, _ in statements),
                detail=f"{key[1]} payment {key[0]} stated {len(statements)} ways: {stated};"
                " applied to no invoice until the processor confirms one",
            )
        )  # fmt: skip
    known = _loaded_states(conn, [k for k in after if k not in flagged])
    for key, statements in after.items():
        if key in flagged:
            continue
        invoice_number, amount, currency, source_file = known[key]
        invoice_id, period_start = conn.execute(
            "select t.invoice_id, coalesce(i.period_start, date_trunc('month', t.paid_at)::date)"
            " from billing.payment_txn t left join billing.invoices i using (invoice_id)"
            " where t.payment_id = %s and t.status = %s",
            list(key),
        ).fetchone()
        stated = "; ".join(_statement(p, f) for p, f in statements)
        out.append(
            Mismatch(
                payment_id=key[0], status=key[1], reason="conflicting_statements", invoice_number=invoice_number,
                invoice_id=invoice_id, period_start=period_start, currency=currency,
                amount=max([Decimal(amount), *(p.amount for p, _ in statements)]),
                detail=f"{key[1]} payment {key[0]} loaded as {amount} {currency} for {invoice_number}"
                f" ({source_file}) and decided then, stated again as {stated}",
            )
        )  # fmt: skip
    return out


def _invoices(conn: psycopg.Connection, numbers: list[str]) -> dict[str, Invoice]:
    rows = conn.execute(
        "select invoice_id, invoice_number, status, currency, total, period_start"
        " from billing.lock_invoices(%s::text[])",
        [numbers],
    ).fetchall()
    invoices = {r[1]: Invoice(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}
    ids = [inv.invoice_id for inv in invoices.values()]
    credited = dict(
        conn.execute(
            "select invoice_id, sum(total) from billing.credit_notes where invoice_id = any(%s) group by 1", [ids]
        ).fetchall()
    )
    applied = dict(
        conn.execute(
            "select invoice_id, sum(amount) from billing.payment_txn where invoice_id = any(%s)"
            " and status = 'succeeded' and match_status = 'applied' group by 1",
            [ids],
        ).fetchall()
    )
    for inv in invoices.values():
        inv.owed += credited.get(inv.invoice_id, Decimal(0))
        inv.applied = applied.get(inv.invoice_id, Decimal(0))
    return invoices


def _earlier(conn: psycopg.Connection, payment_ids: list[str]) -> dict[str, Earlier]:
    rows = conn.execute(
        "select payment_id, match_status, amount, invoice_id from billing.payment_txn"
        " where status = 'succeeded' and payment_id = any(%s)",
        [payment_ids],
    ).fetchall()
    return {r[0]: Earlier(r[1], r[2], r[3]) for r in rows}


def _open_underpaid(conn: psycopg.Connection, invoice_ids: list[Any]) -> dict[Any, list[tuple[str, str]]]:
    rows = conn.execute(
        "select invoice_id, payment_id, status from billing.payment_mismatches"
        " where reason = 'underpaid' and resolved_at is null and invoice_id = any(%s)",
        [invoice_ids],
    ).fetchall()
    out: dict[Any, list[tuple[str, str]]] = {}
    for invoice_id, payment_id, status in rows:
        out.setdefault(invoice_id, []).append((payment_id, status))
    return out


def _write(
    conn: psycopg.Connection,
    new: dict[tuple[str, str], tuple[Payment, str]],
    invoices: dict[str, Invoice],
    decisions: Decisions,
    actor: str,
) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into billing.payment_txn (payment_id, status, invoice_number, invoice_id, amount, currency,"
            " amount_usd, paid_at, match_status, source_file, line_no) values (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s)",
            [
                (
                    p.payment_id, p.status, p.invoice_number,
                    invoices[p.invoice_number].invoice_id if p.invoice_number in invoices else None,
                    p.amount, p.currency, p.amount_usd, p.paid_at, decisions.match_status[key], source, p.line_no,
                )
                for key, (p, source) in new.items()
            ],
        )  # fmt: skip
        cur.executemany(
            "insert into billing.payment_mismatches (payment_id, status, reason, invoice_number, invoice_id,"
            " period_start, currency, amount, detail) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (m.payment_id, m.status, m.reason, m.invoice_number, m.invoice_id, m.period_start, m.currency,
                 m.amount, m.detail)
                for m in decisions.mismatches
            ],
        )  # fmt: skip
        # Status changes go through the audited functions of 090_billing_owner.sql: each writes
        # its ops.audit_log row (`payment_mismatch.resolved`, `invoice.paid`) in this transaction.
        cur.executemany(
            "select billing.resolve_payment_mismatch(%s, %s, %s, %s)",
            [(key[0], key[1], by, actor) for key, by in decisions.resolved.items()],
        )
    for inv in decisions.paid:
        conn.execute(
            "select billing.mark_invoice_paid(%s, %s, %s, %s)",
            [
                inv.invoice_id,
                inv.applied_payments,
                actor,
                Jsonb({"owed": str(inv.owed), "paid": str(inv.applied), "currency": inv.currency}),
            ],
        )


def load_payments(conninfo: str | None = None, landing_url: str | None = None, *, actor: str = ACTOR) -> LoadResult:
    """Load every new export file under `payments/` and match its payments; one transaction."""
    zone: Zone = landing(landing_url)
    result = LoadResult()
    with warehouse.transaction(conninfo or warehouse.url()) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext('meterline.payments.load'))")
        known_files = {tuple(r) for r in conn.execute("select source_file, checksum from raw.payment_files")}
        new: dict[tuple[str, str], tuple[Payment, str]] = {}
        read_files: list[tuple[FileResult, list[Payment]]] = []
        for landed in zone.list(PREFIX, SUFFIXES):
            try:
                data = zone.read_bytes(landed.path)
            except OSError as exc:
                unread = FileResult(
                    landed.path, "", error=f"{zone.uri(landed.path)}: unreadable ({exc})", io_error=True
                )
                result.files.append(unread)
                continue
            fr = FileResult(landed.path, hashlib.sha256(data).hexdigest())
            result.files.append(fr)
            if (fr.path, fr.checksum) in known_files:
                fr.skipped = True
                continue
            try:
                good, fr.rejected = read_export(zone.uri(landed.path), data)
            except UnreadableExport as exc:
                fr.error = str(exc)
                continue
            fr.rows_read = len(good) + len(fr.rejected)
            read_files.append((fr, good))

        loaded = _loaded_states(conn, [p.key for _, good in read_files for p in good])
        # Payment states stated more than one way: within this load, and against earlier loads.
        within: dict[tuple[str, str], list[tuple[Payment, str]]] = {}
        after: dict[tuple[str, str], list[tuple[Payment, str]]] = {}
        for fr, good in read_files:
            for p in good:
                if p.key in new:
                    earlier_payment, earlier_file = new[p.key]
                    known = (earlier_payment.invoice_number, earlier_payment.amount, earlier_payment.currency,
                             earlier_file)  # fmt: skip
                else:
                    known = loaded.get(p.key)
                if known is None:
                    new[p.key] = (p, fr.path)
                    fr.rows_loaded += 1
                elif reason := _conflict(p, known):
                    fr.rejected.append(
                        Rejected(
                            p.line_no, f"{reason}: PAYMENT_MISMATCH", f"{p.payment_id},{p.status},{p.invoice_number}"
                        )
                    )
                    if p.key in new:
                        within.setdefault(p.key, [new[p.key]]).append((p, fr.path))
                    else:
                        after.setdefault(p.key, []).append((p, fr.path))
                else:
                    fr.duplicates += 1

        payments = [p for p, _ in new.values()]
        invoices = _invoices(conn, sorted({p.invoice_number for p in payments}))
        # A payment in dispute pays nothing: matching decides on the undisputed ones only.
        decisions = decide(
            [p for p in payments if p.key not in within],
            invoices,
            _earlier(conn, sorted({p.payment_id for p in payments if p.status == "refunded"})),
            _open_underpaid(conn, [inv.invoice_id for inv in invoices.values()]),
        )
        decisions.match_status |= dict.fromkeys(within, "mismatch")
        decisions.mismatches += _conflict_mismatches(conn, within, after, invoices)
        _write(conn, new, invoices, decisions, actor)

        with conn.cursor() as cur:
            cur.executemany(
                "insert into raw.payment_files (source_file, checksum, format, rows_read, rows_loaded, rows_duplicate,"
                " rows_rejected) values (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (fr.path, fr.checksum, export_format(fr.path), fr.rows_read, fr.rows_loaded, fr.duplicates,
                     len(fr.rejected))
                    for fr, _ in read_files
                ],
            )  # fmt: skip
            cur.executemany(
                "insert into raw.payments_rejected (source_file, line_no, reason, raw) values (%s, %s, %s, %s)"
                " on conflict (source_file, line_no) do update set reason = excluded.reason, raw = excluded.raw,"
                " loaded_at = now()",
                [(fr.path, r.line_no, r.reason, r.raw) for fr, _ in read_files for r in fr.rejected],
            )
        result.paid = [inv.invoice_number for inv in decisions.paid]
        result.mismatches = decisions.mismatches
        result.resolved = len(decisions.resolved)
    for fr in result.files:
        for r in fr.rejected[:5]:
            log.warning("%s: line %s: %s", fr.path, r.line_no, r.reason)
    log.info(result.summary())
    return result
