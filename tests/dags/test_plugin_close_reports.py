"""The close reports in the Airflow UI: the plugin, as Airflow's plugins manager loads it, mounts the
reports app at /meterline and links to it from every DAG page; the app serves the outbox's
reports, the newest as `latest`, and nothing that is not a period's report."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from meterline import airflow_env
from meterline.landing import Zone
from meterline.reporting.web import create_app

pytestmark = [pytest.mark.dags]


def _page(period: str) -> bytes:
    return f"<!doctype html><html><body><h1>Close {period}</h1></body></html>".encode()


@pytest.fixture
def outbox(tmp_path) -> Zone:
    zone = Zone(str(tmp_path / "outbox"))
    for period in ("2026-08", "2026-10", "2026-09"):
        zone.write_bytes(f"reports/{period}.html", _page(period))
    zone.write_bytes("reports/notes.html", b"<p>not a period</p>")
    zone.write_bytes("invoices/2026-10/INV-1.json", b'{"secret": true}')
    return zone


def test_reports_app_serves_the_latest_a_given_period_and_nothing_else(outbox):
    client = TestClient(create_app(outbox.url))

    latest = client.get("/reports/latest")
    assert latest.status_code == 200
    assert latest.headers["content-type"].startswith("text/html")
    assert latest.content == _page("2026-10")
    assert client.get("/reports/2026-09").content == _page("2026-09")

    index = client.get("/reports/")
    assert index.status_code == 200
    links = [line.split('href="')[1].split('"')[0] for line in index.text.splitlines() if line.startswith("<li>")]
    assert links == ["2026-10", "2026-09", "2026-08"]  # newest first; notes.html is not a period

    # No report for the period, or not a period at all: 404, whatever the name tries to reach.
    for path in (
        "/reports/2026-11",
        "/reports/2026-13",
        "/reports/notes",
        "/reports/2026-10.html",
        "/reports/..%2Finvoices%2F2026-10%2FINV-1.json",
        "/reports/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/reports/2026-10%00",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"secret" not in response.content


def test_reports_app_reads_an_s3_outbox(s3_bucket):
    zone = Zone(f"{s3_bucket}/outbox")
    zone.write_bytes("reports/2026-09.html", _page("2026-09"))
    zone.write_bytes("reports/2026-10.html", _page("2026-10"))
    client = TestClient(create_app(zone.url))
    assert client.get("/reports/latest").content == _page("2026-10")
    assert client.get("/reports/2026-09").content == _page("2026-09")
    assert client.get("/reports/2026-07").status_code == 404


def test_empty_outbox_has_no_latest_report(tmp_path):
    client = TestClient(create_app(str(tmp_path / "empty")))
    assert client.get("/reports/latest").status_code == 404
    assert "No close report has been written yet" in client.get("/reports/").text


# Runs in a subprocess: Airflow's API app checks tokens against the metadata database, and this
# process's in-process Airflow points at a scratch home that is not migrated.
_THROUGH_AIRFLOW = """
import json
from fastapi.testclient import TestClient
from airflow import plugins_manager
from airflow.api_fastapi.app import create_app, get_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

plugins, errors = plugins_manager._get_plugins()
info = {p["name"]: p for p in plugins_manager.get_plugin_info()}["meterline"]
client = TestClient(create_app(apps="core"))
token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="finance", role="viewer"))
calls = {
    "anonymous": client.get("/meterline/reports/latest"),
    "forged": client.get("/meterline/reports/latest", headers={"Authorization": "Bearer forged"}),
    "cookie": client.get("/meterline/reports/latest", cookies={"_token": token}),
    "bearer": client.get("/meterline/reports/2026-08", headers={"Authorization": f"Bearer {token}"}),
}
print("RESULT " + json.dumps({
    "errors": [path for path in errors if "meterline" in path],
    "listeners": [type(listener).__name__ for p in plugins if p.name == "meterline" for listener in p.listeners],
    "external_views": [[v["name"], v["destination"], v["href"]] for v in info["external_views"]],
    "fastapi_apps": [[a["name"], a["url_prefix"]] for a in info["fastapi_apps"]],
    "calls": {name: [r.status_code, r.text] for name, r in calls.items()},
}))
"""


def test_airflow_loads_the_plugin_mounts_the_reports_and_asks_for_a_signed_in_user(outbox, airflow_home, server_url):
    env = airflow_env.environment(airflow_home, server_url) | {
        "OUTBOX_URL": outbox.url,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
    }
    done = subprocess.run([sys.executable, "-c", _THROUGH_AIRFLOW], env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))

    assert result["errors"] == []
    assert result["listeners"] == ["RunRecorder"]
    assert result["external_views"] == [
        ["Close report", "dag", "meterline/reports/latest"],
        ["Close reports", "nav", "meterline/reports/"],
    ]
    assert result["fastapi_apps"] == [["meterline close reports", "/meterline"]]
    calls = result["calls"]
    assert calls["anonymous"][0] == 401 and calls["forged"][0] == 403
    assert calls["cookie"] == [200, _page("2026-10").decode()]
    assert calls["bearer"] == [200, _page("2026-08").decode()]
