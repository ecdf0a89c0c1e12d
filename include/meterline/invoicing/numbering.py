"""Gap-free document numbers per series and year (`INV-2025-000123`, `CN-2025-000004`).

The counter row is incremented in the caller's transaction and stays locked until it ends: a
document that is rolled back gives its number back, and concurrent issuers take turns, so the
committed numbers of a year are exactly 1..N. The pipeline cannot write the counters itself:
`billing.next_document_number` (090_billing_owner.sql) is its only way to take a number.
"""

from __future__ import annotations

import psycopg

SERIES = ("INV", "CN")


def next_number(conn: psycopg.Connection, series: str, year: int) -> str:
    if series not in SERIES:
        raise ValueError(f"unknown document series {series!r}; expected one of {SERIES}")
    (number,) = conn.execute("select billing.next_document_number(%s, %s)", [series, year]).fetchone()
    return f"{series}-{year}-{number:06d}"
