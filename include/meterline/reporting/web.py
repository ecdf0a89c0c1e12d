"""The close reports over HTTP: a small FastAPI app the Airflow plugin mounts at `/meterline`.

- `GET /reports/`: the periods that have a report, newest first, as an HTML list of links.
- `GET /reports/latest`: the newest period's report.
- `GET /reports/{YYYY-MM}`: that period's report; 404 when there is none or the name is not a period.

Reports are read from `OUTBOX_URL/reports/YYYY-MM.html` through `meterline.landing.Zone`, so an
`s3://` outbox works the same as a local one. Only names matching `YYYY-MM` are ever turned into
a path: nothing a caller sends can reach another file.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

PERIOD = re.compile(r"(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])")
REPORTS = "reports"


def _zone(outbox_url: str | None):
    from meterline import landing

    return landing.outbox(outbox_url)


def periods(outbox_url: str | None = None) -> list[str]:
    """Periods (`YYYY-MM`) with a close report in the outbox, newest first."""
    found = []
    for f in _zone(outbox_url).list(REPORTS, suffixes=(".html",)):
        name = f.path.removeprefix(f"{REPORTS}/").removesuffix(".html")
        if PERIOD.fullmatch(name):
            found.append(name)
    return sorted(found, reverse=True)


def report(period: str, outbox_url: str | None = None) -> bytes | None:
    """The report's HTML, or None when `period` is not a period or has no report."""
    if not PERIOD.fullmatch(period):
        return None
    zone = _zone(outbox_url)
    relative = f"{REPORTS}/{period}.html"
    return zone.read_bytes(relative) if zone.exists(relative) else None


def _index_page(found: list[str]) -> str:
    items = "\n".join(f'<li><a href="{html.escape(p)}">{html.escape(p)}</a></li>' for p in found)
    body = f"<ul>\n{items}\n</ul>" if found else "<p>No close report has been written yet.</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>meterline close reports</title></head>'
        f'<body><h1>Close reports</h1><p><a href="latest">Latest</a></p>\n{body}\n</body></html>'
    )


def create_app(outbox_url: str | None = None, dependencies: Sequence[Callable[..., Any]] = ()) -> FastAPI:
    """The reports app. `outbox_url` defaults to OUTBOX_URL at each request; `dependencies`
    guard every route (the plugin passes Airflow's authentication check)."""
    app = FastAPI(
        title="meterline close reports",
        dependencies=[Depends(d) for d in dependencies],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def found(period: str) -> HTMLResponse:
        page = report(period, outbox_url)
        if page is None:
            raise HTTPException(status_code=404, detail=f"no close report for period {period!r}")
        return HTMLResponse(page)

    @app.get("/reports/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(_index_page(periods(outbox_url)))

    @app.get("/reports/latest", response_class=HTMLResponse)
    def latest() -> HTMLResponse:
        newest = periods(outbox_url)
        if not newest:
            raise HTTPException(status_code=404, detail="no close report has been written yet")
        return found(newest[0])

    @app.get("/reports/{period}", response_class=HTMLResponse)
    def by_period(period: str) -> HTMLResponse:
        return found(period)

    return app
