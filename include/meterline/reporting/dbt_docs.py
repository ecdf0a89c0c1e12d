"""The dbt documentation site, published next to the close report.

`dbt docs generate --static` writes one self-contained page (the manifest and the warehouse's
catalog inlined), so finance opens it from the outbox like the close report, with no dbt server.
It is written to `OUTBOX_URL/reports/dbt-docs/index.html`, with `manifest.json` and
`catalog.json` beside it for tools that read them. The project sets
`send_anonymous_usage_stats: false`, so the page's tracker (the only script it would fetch from
the network) stays off: the page loads nothing from outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from meterline import landing, transform

DOCS_PREFIX = "reports/dbt-docs"
# What dbt writes (in its target folder) -> where it goes under DOCS_PREFIX.
PUBLISHED = {"static_index.html": "index.html", "manifest.json": "manifest.json", "catalog.json": "catalog.json"}


@dataclass(frozen=True)
class DocsSite:
    index: str  # URL of the page to open
    files: list[str]  # every URL written


def generate(conninfo: str, target_path: Path, as_of: datetime | date) -> Path:
    """`dbt docs generate --static` into `target_path` (not the shared target folder, whose
    manifest the DAGs read); returns the folder. The catalog is read from the warehouse, so run
    it after the models are built; the compiled SQL shown is as of `as_of` (the build's)."""
    transform.run(["docs", "generate", "--static", "--target-path", str(target_path), "--quiet"], conninfo, as_of=as_of)
    return target_path


def publish_dbt_docs(conninfo: str, as_of: datetime | date, outbox_url: str | None = None) -> DocsSite:
    """Generate the docs against the warehouse and copy them to the outbox (local or s3://)."""
    zone = landing.outbox(outbox_url)
    with transform.scratch_target() as target:
        built = generate(conninfo, target, as_of)
        written = [
            zone.write_bytes(f"{DOCS_PREFIX}/{name}", (built / source).read_bytes())
            for source, name in PUBLISHED.items()
        ]
    return DocsSite(index=zone.uri(f"{DOCS_PREFIX}/index.html"), files=written)
