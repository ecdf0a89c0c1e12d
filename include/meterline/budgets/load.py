"""Loading `LANDING_URL/budgets/budgets.csv` into `raw.budgets`: all or nothing.

Columns: budget_id, scope_type (tenant | service), scope_id, amount, currency, thresholds
(percentages separated by `|`, e.g. `80|100`). Any bad line refuses the whole file, naming
every line and reason, and the previous budgets stay.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation

from meterline import warehouse
from meterline.invoicing.money import minor_units_table
from meterline.landing import landing

PATH = "budgets/budgets.csv"
COLUMNS = ("budget_id", "scope_type", "scope_id", "amount", "currency", "thresholds")


class BudgetsError(ValueError):
    """The budgets file is refused; the message names each line and reason."""


def parse(source: str, text: str) -> list[tuple]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise BudgetsError(f"{source}: line 1: header lacks {', '.join(missing)}")
    rows, problems, seen = [], [], set()
    for row in reader:
        line = reader.line_num
        values = {c: (row.get(c) or "").strip() for c in COLUMNS}
        try:
            amount = Decimal(values["amount"])
            thresholds = sorted(Decimal(t) for t in values["thresholds"].split("|") if t.strip())
        except InvalidOperation:
            problems.append(f"{source}: line {line}: amount or thresholds not numbers")
            continue
        if not values["budget_id"] or values["budget_id"] in seen:
            problems.append(f"{source}: line {line}: budget_id missing or repeated")
        elif values["scope_type"] not in ("tenant", "service") or not values["scope_id"]:
            problems.append(f"{source}: line {line}: scope_type must be tenant or service, with a scope_id")
        elif values["currency"] not in minor_units_table():
            problems.append(f"{source}: line {line}: unknown currency {values['currency']!r}")
        elif not amount.is_finite() or amount <= 0 or not thresholds or any(t <= 0 for t in thresholds):
            problems.append(f"{source}: line {line}: amount and thresholds must be positive")
        else:
            seen.add(values["budget_id"])
            rows.append((values["budget_id"], values["scope_type"], values["scope_id"], amount,
                         values["currency"], thresholds, line))  # fmt: skip
    if problems:
        raise BudgetsError("budgets refused:\n" + "\n".join(problems))
    return rows


def load_budgets(conninfo: str | None = None, landing_url: str | None = None) -> int:
    """Replace raw.budgets with the file's budgets in one transaction; returns their count."""
    zone = landing(landing_url)
    rows = parse(zone.uri(PATH), zone.read_bytes(PATH).decode("utf-8-sig"))
    with warehouse.transaction(conninfo or warehouse.url()) as conn:
        conn.execute("delete from raw.budgets")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into raw.budgets (budget_id, scope_type, scope_id, amount, currency, thresholds, line_no,"
                " source_file) values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(*row, PATH) for row in rows],
            )
    return len(rows)
