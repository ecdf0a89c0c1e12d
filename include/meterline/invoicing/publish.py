"""Invoice and credit-note documents in the outbox, never two under one number.

A document is rendered and written under a temporary name (`.pending/<final path>.<document
id>`, the invoice's or credit note's uuid) inside the issuing transaction, so a document that
cannot be rendered rolls its issue back; it is published under its number (moved to
`invoices/YYYY-MM/<number>.json|pdf`, or `credit_notes/...`) only after that transaction
commits. A number given back by a rolled-back issue is therefore never visible, and the next
issue that takes it cannot meet a twin.

`sweep_pending` settles what a crash left behind, for every period, invoices and credit notes
alike: a temporary whose document (number and id) was committed is published (or dropped, if its
document is already there), any other is removed, among them those of a rolled-back issue whose
number a later issue took.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

from meterline.invoicing import documents
from meterline.invoicing.documents import Document
from meterline.landing import Zone

log = logging.getLogger(__name__)

PENDING = ".pending"


@dataclass(frozen=True)
class Staged:
    temporary: str  # path of the written bytes, under PENDING
    final: str  # the path it is published under
    data: bytes  # kept, so a publish whose temporary was swept meanwhile still writes it


def stage(zone: Zone, doc: Document) -> list[Staged]:
    """Render the document's JSON and PDF and write them under temporary names."""
    token = doc.document_id
    staged = []
    for final, data in ((doc.json_path, documents.render_json(doc)), (doc.pdf_path, documents.render_pdf(doc))):
        temporary = f"{PENDING}/{final}.{token}"
        zone.write_bytes(temporary, data)
        staged.append(Staged(temporary, final, data))
    return staged


def publish(zone: Zone, staged: list[Staged]) -> list[str]:
    """After the commit: each temporary becomes its final name; returns the final URIs."""
    uris = []
    for item in staged:
        try:
            uris.append(zone.move(item.temporary, item.final))
        except FileNotFoundError:  # a sweep settled it meanwhile: write what was rendered
            uris.append(zone.write_bytes(item.final, item.data))
    return uris


def _identity(temporary: str) -> tuple[str, str, str]:
    """(final path, number, document id) of `.pending/<kind>/<YYYY-MM>/<number>.<ext>.<id>`."""
    final, document_id = temporary.removeprefix(f"{PENDING}/").rsplit(".", 1)
    return final, final.rsplit("/", 1)[-1].rsplit(".", 1)[0], document_id


def sweep_pending(conn: psycopg.Connection, zone: Zone) -> tuple[list[str], list[str]]:
    """Publish the temporaries of committed documents, remove the others (rolled back).

    Returns (published, removed) URIs. A temporary of an issue still in flight may be removed:
    its publish then writes the bytes it rendered."""
    committed = {
        (number, str(document_id))
        for number, document_id in conn.execute(
            "select invoice_number, invoice_id from billing.invoices"
            " union all select credit_note_number, credit_note_id from billing.credit_notes"
        ).fetchall()
    }
    published, removed = [], []
    for item in zone.list(PENDING):
        final, number, document_id = _identity(item.path)
        if (number, document_id) in committed and not zone.exists(final):
            published.append(zone.move(item.path, final))
        else:
            zone.delete(item.path)
            removed.append(zone.uri(item.path))
    if removed:
        log.info("removed %d temporary document(s) of rolled-back or settled issues", len(removed))
    return published, removed
