"""Load the catalog export from `LANDING_URL/catalog/` into raw.catalog_*, all or nothing.

Every file is validated first (meterline.catalog.validate); any problem refuses the whole load
with every problem listed, and the warehouse keeps the previous catalog. A valid export replaces
each entity's table in one transaction (a file is a complete export of its entity). The optional
aws_invoice_totals.csv replaces its table only when present.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from psycopg import sql

from meterline import audit, warehouse
from meterline.catalog.validate import SCHEMAS, CatalogError, validate
from meterline.landing import Zone

log = logging.getLogger(__name__)

PREFIX = "catalog"


@dataclass(frozen=True)
class LoadResult:
    """What a load did: rows per file and the checksum of each file loaded."""

    row_counts: dict[str, int]
    checksums: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())


def read_export(zone: Zone) -> dict[str, bytes]:
    """The catalog files present under `catalog/` (top level only), by file name."""
    found = {}
    for landed in zone.list(PREFIX, (".csv",)):
        name = landed.path[len(PREFIX) + 1 :]
        if "/" in name:
            continue
        if name not in SCHEMAS:
            log.warning("ignoring %s: not a catalog file (docs/catalog.md)", zone.uri(landed.path))
            continue
        found[name] = zone.read_bytes(landed.path)
    return found


def load_catalog(conninfo: str | None, landing_url: str | None = None, *, actor: str = "pipeline") -> LoadResult:
    """Validate and load the whole export; raises CatalogError (loading nothing) on any problem."""
    zone = Zone(landing_url) if landing_url else _default_zone()
    files = read_export(zone)
    parsed, problems = validate(files)
    if problems:
        raise CatalogError(problems)
    checksums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    counts: dict[str, int] = {}
    with warehouse.transaction(conninfo) as conn:
        # One writer at a time: two syncs racing would otherwise interleave deletes and inserts.
        conn.execute("select pg_advisory_xact_lock(hashtext('meterline.catalog.load'))")
        for name, parsed_file in parsed.items():
            table, _, columns = SCHEMAS[name]
            names = [c.name for c in columns] + ["source_file"]
            target = sql.Identifier("raw", table)
            conn.execute(sql.SQL("delete from {}").format(target))
            copy = sql.SQL("copy {} ({}) from stdin").format(target, sql.SQL(", ").join(map(sql.Identifier, names)))
            source_file = zone.uri(f"{PREFIX}/{name}")
            with conn.cursor().copy(copy) as cp:
                for row in parsed_file.rows:
                    cp.write_row([row[c.name] for c in columns] + [source_file])
            counts[name] = len(parsed_file.rows)
        audit.record(
            conn,
            actor=actor,
            action="catalog.loaded",
            resource=zone.uri(PREFIX),
            metadata={"row_counts": counts, "checksums": checksums},
        )
    log.info("catalog loaded from %s: %s", zone.uri(PREFIX), counts)
    return LoadResult(row_counts=counts, checksums=checksums, source=zone.uri(PREFIX))


def _default_zone() -> Zone:
    from meterline.landing import landing

    return landing()


# cautious: only tests whose parents are all selected (not other areas' tests that touch the catalog).
SNAPSHOT_SELECTION = [
    "currencies", "path:models/staging/catalog", "path:snapshots", "--indirect-selection", "cautious",
]  # fmt: skip


def snapshot_catalog(conninfo: str | None) -> None:
    """Record the loaded catalog's history: dbt build of the catalog staging views and snapshots."""
    from meterline import transform

    transform.run(["build", "--select", *SNAPSHOT_SELECTION], conninfo)
