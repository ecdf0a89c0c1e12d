"""Issued documents still are what was issued: each invoice's and credit note's stored content
hash recomputed from its stored rows, by the one definition (`billing.invoice_content_hash`,
`billing.credit_note_content_hash`, 090_billing_owner.sql).

The database refuses every change to an issued document from the pipeline, so a mismatch means
someone with more rights than the pipeline (a superuser, the owner role) changed a document, or
restored it from elsewhere. The gate's `content_hash` check blocks the period on any mismatch,
in any period: while one issued document is not what its tenant received, none should be added
to it until someone has looked. The dbt test `assert_issued_documents_match_their_content_hash`
asserts the same for every dbt run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from meterline.invoicing.gate import GateCheck

CONTENT_HASH_CHECK = "content_hash"
SHOWN = 10  # documents named in the gate's reason; the query finds them all


@dataclass(frozen=True)
class HashMismatch:
    kind: str  # invoice | credit_note
    number: str
    stored: str | None
    recomputed: str | None


def hash_mismatches(conn: psycopg.Connection) -> list[HashMismatch]:
    """Every issued document whose stored content hash is not that of its stored rows."""
    rows = conn.execute(
        "select kind, number, stored, recomputed from ("
        " select 'invoice' as kind, invoice_number as number, content_hash as stored,"
        " billing.invoice_content_hash(invoice_id) as recomputed from billing.invoices"
        " union all"
        " select 'credit_note', credit_note_number, content_hash,"
        " billing.credit_note_content_hash(credit_note_id) from billing.credit_notes"
        ") documents where stored is distinct from recomputed order by kind desc, number"
    ).fetchall()
    return [HashMismatch(*row) for row in rows]


def content_hash_check(conn: psycopg.Connection) -> GateCheck:
    """The gate's check: passes when every issued document matches its content hash."""
    from meterline.invoicing.gate import GateCheck  # here: gate.py imports this module

    mismatches = hash_mismatches(conn)
    if not mismatches:
        return GateCheck(CONTENT_HASH_CHECK, "period", True)
    named = ", ".join(m.number for m in mismatches[:SHOWN]) + (" …" if len(mismatches) > SHOWN else "")
    return GateCheck(
        CONTENT_HASH_CHECK,
        "period",
        False,
        f"{len(mismatches)} issued document(s) no longer match their content hash: {named}; a document was"
        " changed after issue by a role above the pipeline. Compare with the documents sent and ops.audit_log;"
        " see select invoice_number, content_hash, billing.invoice_content_hash(invoice_id) from billing.invoices"
        " (billing.credit_notes: billing.credit_note_content_hash(credit_note_id))",
    )
