"""The README's ten analyst questions, run as `meterline_analyst` against a generated month, and
the dbt docs: every mart and column described, the static site published to the outbox.

The SQL is read from the README ("## For analysts", "#### N. title" then a ```sql block), so the
documentation and these tests cannot drift. The month is built once for the module, the way the
pipeline builds one (generated feeds, the real loaders, dbt, suites, gate, emitter, corrections),
with the cases the questions ask about: a blocked invoice (no tax rate for CH), a voided and a
disputed invoice, a tenant over its llm quota, late usage billed as an adjustment, and cost
left in quarantine. Expected answers come from the generators' own truth, the documents the
emitter wrote, or raw tables the analyst cannot read, not from the marts the queries read.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import psycopg
import pytest
from psycopg import sql

from meterline import close, transform, warehouse
from meterline.catalog.load import load_catalog
from meterline.config import project_root
from meterline.cur import load as cur_load
from meterline.events.load import load_partition
from meterline.invoicing.corrections import dispute_invoice, void_invoice
from meterline.invoicing.gate import evaluate_gate, require_pass
from meterline.landing import Zone
from meterline.quality.suites import run_suites
from meterline.reporting.dbt_docs import publish_dbt_docs
from meterline.synthetic.catalog import ALLOCATION_RULES, generate_catalog, to_csv
from meterline.synthetic.cur import generate as generate_cur
from meterline.synthetic.events import generate as generate_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERIOD = date(2026, 10, 1)
NEXT = date(2026, 11, 1)
# Every build is as of a named day, never today: October's close (drafts through November), and
# the nightly build after the late event (still November, which carries the adjustment).
CLOSED = datetime(2026, 11, 1, tzinfo=UTC)
REBUILT = datetime(2026, 11, 21, tzinfo=UTC)
DAYS = 31
QUOTA_TOKENS = 5_000_000  # one on-time event that takes its tenant over the llm quota
LATE_TOKENS = 250_000  # arrives after the month was issued


# --- the README -------------------------------------------------------------------------------


def readme_queries() -> dict[int, tuple[str, str]]:
    """{number: (title, sql)} of the "Ten questions" in the README's "For analysts" section."""
    text = (project_root() / "README.md").read_text()
    section = text.split("\n## For analysts\n", 1)[1].split("\n## ", 1)[0]
    questions = section.split("\n### Ten questions", 1)[1].split("\n### ", 1)[0]
    found = re.findall(r"^#### (\d+)\. (.+?)\n.*?^```sql\n(.*?)^```", questions, flags=re.M | re.S)
    return {int(n): (title, query) for n, title, query in found}


def test_the_readme_has_ten_questions_with_their_sql():
    queries = readme_queries()
    assert sorted(queries) == list(range(1, 11))
    for title, query in queries.values():
        assert title and query.lstrip().lower().startswith("select"), title
        # unqualified names, as the runbooks query them
        assert not re.search(r"\b(marts|billing|raw|ops|staging)\.", query), title


# --- the month --------------------------------------------------------------------------------


def _analyst(conninfo: str) -> psycopg.Connection:
    """A connection acting as meterline_analyst, with the search path the README sets."""
    conn = psycopg.connect(conninfo, autocommit=True, options="-c timezone=UTC")
    conn.execute("set role meterline_analyst")
    conn.execute("set search_path = marts, billing")
    return conn


def _insert_event(db: psycopg.Connection, subscription_id: str, at: datetime, tokens: int, key: str) -> None:
    db.execute(
        'insert into raw.events (event_id, idempotency_key, subscription_id, event_type, properties, "timestamp",'
        " source_file, line_no, partition_date) values (%s, %s, %s, 'llm.completion', %s, %s, %s, 1, %s)",
        [uuid.uuid4(), key, subscription_id, json.dumps({"tokens": tokens}), at, f"events/{key}.jsonl", at.date()],
    )


@pytest.fixture(scope="module")
def month(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("analyst")
    landing, outbox = str(root / "landing"), str(root / "outbox")
    name = f"mlt_analyst_{uuid.uuid4().hex[:8]}"
    warehouse.create_database(server_url, name, template=template_db)
    url = warehouse.with_database(server_url, name)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for var, value in {"WAREHOUSE_URL": url, "LANDING_URL": landing, "OUTBOX_URL": outbox}.items():
                mp.setenv(var, value)
            # 150 events a day carry ~5 rejected ones (3.3 %), over the 1 % default threshold.
            mp.setenv("EVENT_REJECTION_PCT", "10")
            yield _build_month(url, landing, outbox)
    finally:
        warehouse.drop_database(server_url, name)


def _build_month(url: str, landing: str, outbox: str) -> dict:
    zone = Zone(landing)
    cur = generate_cur(zone, start=PERIOD, months=1, rows=1_500, deliveries=1, tenants=6)[0]
    catalog = generate_catalog(
        landing,
        tenants=6,
        subscriptions=8,
        period=PERIOD,
        aws_invoice_totals={"2026-10": (cur.decimal("billed"), "USD")},
    )
    # No tax rate for Switzerland: the CH tenant's invoices are blocked, the others go out.
    zone.write_bytes(
        "catalog/tax_rates.csv", to_csv([r for r in catalog.files["tax_rates.csv"] if r["country"] != "CH"])
    )
    generate_events(landing, PERIOD, DAYS, events_per_day=150, files_per_day=1)
    load_catalog(url, landing)
    cur_load.run(url, landing)
    for day in range(DAYS):
        load_partition(PERIOD + timedelta(days=day), landing_url=landing, conninfo=url)

    subs = catalog.files["subscriptions.csv"]
    quota_sub = subs[0]["subscription_id"]  # the generator's first subscription has an llm quota
    with warehouse.connect(url, autocommit=True) as db:
        _insert_event(db, quota_sub, datetime(2026, 10, 20, 13, 5, tzinfo=UTC), QUOTA_TOKENS, "big-1")

    # Seeds, catalog snapshots and models in one dbt call; dbt's tests have their own modules.
    transform.run(["build", "--exclude", "resource_type:test", "resource_type:unit_test", "--quiet"], url, as_of=CLOSED)
    # The gate's other checks as the close runs them; the dbt tests are left to their own modules.
    run_suites(url, "2026-10", dbt_select=None)
    require_pass(evaluate_gate(url, "2026-10", actor="test", require_dbt=False))
    close.emit(url, "2026-10", actor="test")

    with warehouse.connect(url, autocommit=True) as db:
        issued = db.execute(
            "select i.invoice_number, i.subscription_id::text, i.total, p.plan_id from billing.invoices i"
            " join raw.catalog_subscriptions p on p.subscription_id = i.subscription_id"
            " and p.ended_at is null order by i.invoice_number"
        ).fetchall()
    # Late usage: a starter subscription (no minimum commitment) still running in November.
    late_number, late_sub = next((n, s) for n, s, _, plan in issued if plan.startswith("starter-"))
    others = [(n, total) for n, s, total, _ in issued if s not in (late_sub, quota_sub) and total > 0]
    voided, disputed = others[0][0], others[1][0]
    void_invoice(url, voided, reason="plan entered wrongly", actor="finance@meterline.example")
    dispute_invoice(url, disputed, reason="tenant contests the overage", actor="finance@meterline.example")
    with warehouse.connect(url, autocommit=True) as db:
        _insert_event(db, late_sub, datetime(2026, 10, 28, 9, 30, tzinfo=UTC), LATE_TOKENS, "late-1")
    transform.run(["run", "--select", "usage_hourly+", "usage_metered_hourly+", "--quiet"], url, as_of=REBUILT)
    return {
        "url": url,
        "outbox": Zone(outbox),
        "cur": cur,
        "catalog": catalog,
        "quota_sub": quota_sub,
        "late_sub": late_sub,
        "late_number": late_number,
        "voided": voided,
        "disputed": disputed,
    }


def run_question(month: dict, number: int) -> tuple[list[str], list[tuple]]:
    _title, query = readme_queries()[number]
    with _analyst(month["url"]) as conn:
        cur = conn.execute(query)
        return [c.name for c in cur.description], cur.fetchall()


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _documents(month: dict) -> dict[str, dict]:
    zone: Zone = month["outbox"]
    return {
        f.path.rsplit("/", 1)[1][: -len(".json")]: json.loads(zone.read_bytes(f.path))
        for f in zone.list("invoices/2026-10", (".json",))
    }


def _pipeline(month: dict) -> psycopg.Connection:
    return warehouse.connect(month["url"], autocommit=True)


# --- the ten questions ------------------------------------------------------------------------


def test_1_revenue_by_metric_matches_the_issued_documents(month):
    names, rows = run_question(month, 1)
    assert names == ["currency", "revenue_line", "invoices", "amount"]
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    invoices: dict[tuple[str, str], set] = defaultdict(set)
    for number, doc in _documents(month).items():
        if number == month["voided"]:
            continue
        for line in doc["lines"]:
            if line["kind"] != "credit":
                key = (doc["currency"], line["metric_code"] or line["kind"])
                expected[key] += Decimal(line["amount"])
                invoices[key].add(number)
    assert {(c, m): a for c, m, _, a in rows} == dict(expected)
    assert {(c, m): n for c, m, n, _ in rows} == {k: len(v) for k, v in invoices.items()}
    assert len(rows) == len(expected) > 10


def test_2_reconciliation_matches_the_cur_generator(month):
    names, rows = run_question(month, 2)
    assert names[:3] == ["service", "raw_cost", "allocated_cost"] and names[-1] == "status"
    m = month["cur"]
    services = m.table.column("line_item_product_code").to_pylist()
    billed: dict[str, int] = defaultdict(int)
    for service, units in zip(services, m.truth["billed"], strict=True):
        billed[service] += int(units)
    expected = {s: _cents(Decimal(v) / 10**8) for s, v in billed.items()}
    assert {r[0]: r[1] for r in rows} == expected
    assert all(r[2] == r[1] and r[4] == 0 and r[6] == "ok" for r in rows)  # conserved to the cent
    assert [r[1] for r in rows] == sorted(expected.values(), reverse=True)


def test_3_disputed_and_voided_invoices(month):
    names, rows = run_question(month, 3)
    assert names[:4] == ["invoice_number", "tenant_id", "period_start", "status"]
    docs = _documents(month)
    assert [(r[0], r[3], r[5]) for r in rows] == sorted(
        [
            (month["voided"], "void", Decimal(docs[month["voided"]]["total"])),
            (month["disputed"], "disputed", Decimal(docs[month["disputed"]]["total"])),
        ]
    )
    void = next(r for r in rows if r[3] == "void")
    assert void[7:9] == ("finance@meterline.example", "plan entered wrongly") and void[6] is not None


def test_4_quota_utilisation_over_100_percent(month):
    names, rows = run_question(month, 4)
    assert names == ["tenant_id", "metric_code", "first_day_over", "month_to_date", "quota", "peak_pct"]
    # From the raw events and the catalog (what the analyst cannot read): each tenant's
    # month-to-date tokens by day against the sum of its subscriptions' llm quotas.
    files = month["catalog"].files
    tenant_of = {s["subscription_id"]: s["tenant_id"] for s in files["subscriptions.csv"]}
    caps: dict[str, Decimal] = defaultdict(Decimal)
    for q in files["quotas.csv"]:
        if q["event_type"] == "llm.completion":
            caps[tenant_of[q["subscription_id"]]] += Decimal(q["limit_value"])
    with _pipeline(month) as db:
        daily = db.execute(
            """select subscription_id::text, ("timestamp" at time zone 'UTC')::date,
                      sum(coalesce((properties ->> 'tokens')::numeric, 0))
               from raw.events where event_type = 'llm.completion' and "timestamp" >= %s and "timestamp" < %s
               group by 1, 2 order by 2""",
            [PERIOD, NEXT],
        ).fetchall()
    running: dict[str, Decimal] = defaultdict(Decimal)
    first_over: dict[str, date] = {}
    for sub, day, tokens in daily:
        tenant = tenant_of[sub]
        running[tenant] += tokens
        if tenant in caps and running[tenant] > caps[tenant]:
            first_over.setdefault(tenant, day)
    expected = [
        (t, "llm_tokens", first_over[t], running[t], caps[t], (100 * running[t] / caps[t]).quantize(Decimal("0.1")))
        for t in first_over
    ]
    assert rows == sorted(expected, key=lambda r: (-r[5], r[0]))
    quota_tenant = tenant_of[month["quota_sub"]]
    assert [r[0] for r in rows] == [quota_tenant]
    assert rows[0][2] == date(2026, 10, 20)  # the day of the 5,000,000-token event


def test_5_tag_coverage_matches_the_cur_generator(month):
    names, rows = run_question(month, 5)
    assert names[:5] == ["billing_period", "total_cost", "tagged_cost", "untagged_cost", "tag_coverage_pct"]
    m = month["cur"]
    total, tagged = m.decimal("billed"), m.decimal("billed", m.truth["tenant"] != "")
    assert [r[:5] for r in rows] == [
        (PERIOD, total, tagged, total - tagged, (100 * tagged / total).quantize(Decimal("0.01"), ROUND_HALF_UP))
    ]


def test_6_top_tenants_by_margin(month):
    names, rows = run_question(month, 6)
    assert names == ["tenant_id", "currency", "revenue", "revenue_usd", "allocated_cost", "gross_margin", "margin_pct"]
    with (project_root() / "dbt_project/seeds/currencies.csv").open() as seed:
        rates = {r["currency"]: Decimal(r["usd_per_unit"]) for r in csv.DictReader(seed)}
    with _pipeline(month) as db:
        header = db.execute(
            "select tenant_id, currency, subtotal - credits from marts.invoice_header where period_start = %s", [PERIOD]
        ).fetchall()
        cost = dict(
            db.execute(
                "select tenant_id, sum(allocated_cost) from marts.fact_cost_allocated"
                " where billing_period = %s and tenant_id is not null group by 1",
                [PERIOD],
            ).fetchall()
        )
    revenue: dict[str, tuple[str, Decimal]] = {}
    for tenant, currency, amount in header:
        revenue[tenant] = (currency, revenue.get(tenant, (currency, Decimal(0)))[1] + amount)
    expected = []
    for tenant in set(revenue) | set(cost):
        currency, amount = revenue.get(tenant, (None, Decimal(0)))
        usd = _cents(amount * rates[currency]) if currency else Decimal(0)
        margin = usd - cost.get(tenant, Decimal(0))
        pct = (100 * margin / usd).quantize(Decimal("0.01"), ROUND_HALF_UP) if usd > 0 else None
        expected.append((tenant, currency, amount, usd, cost.get(tenant, Decimal(0)), margin, pct))
    expected.sort(key=lambda r: (-r[5], r[0]))
    assert rows == expected[:5]


def test_7_usage_trend_of_the_readme_subscription(month):
    _title, query = readme_queries()[7]
    assert f"'{month['quota_sub']}'" in query  # the generator's first subscription, in the demo too
    names, rows = run_question(month, 7)
    assert names == ["day", "events", "tokens", "events_7d_avg"]
    with _pipeline(month) as db:
        expected = db.execute(
            """select ("timestamp" at time zone 'UTC')::date, count(*),
                      sum(coalesce((properties ->> 'tokens')::numeric, 0))
               from raw.events where subscription_id = %s and "timestamp" >= %s and "timestamp" < %s
               group by 1 order by 1""",
            [month["quota_sub"], PERIOD, NEXT],
        ).fetchall()
    assert [(d, e, t) for d, e, t, _ in rows] == expected
    counts = [e for _, e, _ in expected]
    averages = [
        (Decimal(sum(counts[max(0, i - 6) : i + 1])) / len(counts[max(0, i - 6) : i + 1])).quantize(
            Decimal("0.1"), ROUND_HALF_UP
        )
        for i in range(len(counts))
    ]
    assert [a for *_, a in rows] == averages
    spike = next(r for r in rows if r[0] == date(2026, 10, 20))
    assert spike[2] >= QUOTA_TOKENS


def test_8_unallocated_cost_by_service(month):
    names, rows = run_question(month, 8)
    assert names == ["service", "quarantine_reason", "unallocated_cost", "days"]
    # From the CUR generator and the catalog's rules: a service without a rule keeps all its
    # untagged cost in quarantine, one allocated by tag its untagged lines.
    m = month["cur"]
    services = m.table.column("line_item_product_code").to_pylist()
    methods = {service: method for service, method, _ in ALLOCATION_RULES}
    untagged: dict[str, int] = defaultdict(int)
    days: dict[str, set] = defaultdict(set)
    for service, tenant, units, day in zip(
        services, m.truth["tenant"], m.truth["billed"], m.truth["usage_day"], strict=True
    ):
        if tenant == "" and methods.get(service, "none") in ("none", "tag"):
            untagged[service] += int(units)
            days[service].add(int(day))
    reasons = {s: "untagged_under_tag_rule" if methods.get(s) == "tag" else "no_rule" for s in untagged}
    assert {(s, r) for s, r, _, _ in rows} == set(reasons.items())
    for service, _reason, amount, n_days in rows:
        exact = Decimal(untagged[service]) / 10**8
        assert n_days == len(days[service])
        # each day's row is rounded to the cent and moves by at most a cent to conserve the total
        assert abs(amount - exact) <= Decimal("0.01") * n_days, service
    assert "AmazonSageMaker" in reasons  # never tagged: all of it is quarantined, exactly
    sagemaker = next(r for r in rows if r[0] == "AmazonSageMaker")
    assert sagemaker[2] == _cents(m.decimal("billed", np.array(services) == "AmazonSageMaker"))
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)


def test_9_blocked_invoices_and_why(month):
    names, rows = run_question(month, 9)
    assert names == ["invoice_id", "tenant_id", "currency", "draft_total", "blocked_reason"]
    files = month["catalog"].files
    swiss = {t["tenant_id"] for t in files["tenants.csv"] if t["country"] == "CH"}
    expected = sorted(
        {f"D-202610-{s['subscription_id']}" for s in files["subscriptions.csv"] if s["tenant_id"] in swiss}
    )
    assert [r[0] for r in rows] == expected and expected
    for _, tenant, currency, total, reason in rows:
        assert tenant in swiss and currency == "CHF" and total is None  # no tax rate, no total
        assert reason.startswith("no tax rate for country CH on 2026-10-31; gate: ")
        assert "gate: pricing_configuration (no tax rate for country CH on 2026-10-31" in reason


def test_10_late_usage_adjustment(month):
    names, rows = run_question(month, 10)
    assert names[:5] == ["invoice_id", "tenant_id", "period_start", "status", "metric_code"]
    files = month["catalog"].files
    sub = next(s for s in files["subscriptions.csv"] if s["subscription_id"] == month["late_sub"])
    tenant = next(t for t in files["tenants.csv"] if t["tenant_id"] == sub["tenant_id"])
    component = next(
        c
        for c in files["price_components.csv"]
        if c["plan_id"] == sub["plan_id"] and c["metric_code"] == "llm_tokens" and c["model"] == "per_unit"
    )
    with _pipeline(month) as db:
        (on_time,) = db.execute(
            "select sum((properties ->> 'tokens')::numeric) from raw.events where subscription_id = %s"
            ' and event_type = \'llm.completion\' and "timestamp" >= %s and "timestamp" < %s'
            " and idempotency_key <> 'late-1'",
            [month["late_sub"], PERIOD, NEXT],
        ).fetchone()
    # per unit above the included units: the late tokens billable now that were not before
    included = Decimal(component["included_units"])
    quantity = max(on_time + LATE_TOKENS - included, 0) - max(on_time - included, 0)
    minor = 0 if tenant["currency"] == "JPY" else 2
    amount = (quantity * Decimal(component["unit_price"])).quantize(Decimal(1).scaleb(-minor), ROUND_HALF_UP)
    assert quantity > 0
    assert rows == [
        (
            f"D-202611-{month['late_sub']}", tenant["tenant_id"], NEXT, "open", "llm_tokens", quantity,
            amount, tenant["currency"],
            f"late usage for 2026-10 ({month['late_number']}): usage llm_tokens, 1 late events",
        )
    ]  # fmt: skip


def test_the_analyst_role_cannot_read_raw_or_ops(month):
    with _analyst(month["url"]) as conn:
        for table in ("raw.events", "ops.audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("select 1 from {} limit 1").format(sql.Identifier(*table.split("."))))


# --- dbt docs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs(month, s3_endpoint):
    """The docs generated once and published to an outbox on S3 (moto), as they would be in
    docker-compose's MinIO: the same code writes a local folder."""
    import boto3

    bucket = f"meterline-docs-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        for var, value in {
            "AWS_ENDPOINT_URL_S3": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        }.items():  # fmt: skip
            mp.setenv(var, value)
        boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
        outbox = f"s3://{bucket}/outbox"
        site = publish_dbt_docs(month["url"], REBUILT, outbox)
        yield {"site": site, "zone": Zone(outbox), "outbox": outbox}


def test_every_mart_and_column_is_described(month, docs):
    """Every table dbt built in `marts`, and each of its columns, has a description in the
    manifest, and the description reached the warehouse as a comment (persist_docs)."""
    manifest = json.loads(docs["zone"].read_bytes("reports/dbt-docs/manifest.json"))
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    with _pipeline(month) as db:
        built = db.execute(
            "select c.relname, a.attname, col_description(c.oid, a.attnum) from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid"
            " where n.nspname = 'marts' and c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition"
            " and a.attnum > 0 and not a.attisdropped order by c.relname, a.attnum"
        ).fetchall()
    tables = {t for t, _, _ in built}
    assert len(tables) >= 17  # the marts DESIGN.md names and the reports
    undocumented = sorted(t for t in tables if not (models.get(t) or {}).get("description", "").strip())
    assert undocumented == [], f"marts without a description in their _<area>__models.yml: {undocumented}"
    missing = [f"{t}.{c}" for t, c, _ in built if not models[t]["columns"].get(c, {}).get("description", "").strip()]
    assert missing == [], f"mart columns without a description: {missing}"
    uncommented = [f"{t}.{c}" for t, c, comment in built if not comment]
    assert uncommented == []


def test_docs_site_is_published_next_to_the_close_report(month, docs):
    zone: Zone = docs["zone"]
    assert docs["site"].index == f"{docs['outbox']}/reports/dbt-docs/index.html"
    assert sorted(f.path for f in zone.list("reports/dbt-docs")) == [
        "reports/dbt-docs/catalog.json", "reports/dbt-docs/index.html", "reports/dbt-docs/manifest.json",
    ]  # fmt: skip
    page = zone.read_bytes("reports/dbt-docs/index.html").decode()
    # self-contained: the manifest and the warehouse catalog are inlined ...
    assert "exposure.meterline.monthly_close_report" in page and "exposure.meterline.invoice_emitter" in page
    catalog = json.loads(zone.read_bytes("reports/dbt-docs/catalog.json"))
    assert "model.meterline.invoice_header" in catalog["nodes"]
    assert catalog["nodes"]["model.meterline.invoice_header"]["metadata"]["schema"] == "marts"
    # ... and nothing is loaded from the network: no external script, style or font, and the
    # page's tracker (which would fetch a script from a CDN) is off.
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)
    assert '"send_anonymous_usage_stats": false' in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own background requests (updates, accounts), not the page's.
BROWSER_HOSTS = ("google.com", "googleapis.com", "gstatic.com")


def page_requests(page: Path, tmp_path: Path) -> tuple[str, set[str]]:
    """Open `page` in headless Chromium with every host name unresolvable; return the rendered
    DOM and the http(s) URLs the page asked for (from Chromium's net log)."""
    log = tmp_path / f"{page.stem}-net.json"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={log}", "--virtual-time-budget=10000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    urls = set(re.findall(r'"url":"(https?://[^"]+)"', log.read_text()))
    return done.stdout, {u for u in urls if not urlparse(u).hostname.endswith(BROWSER_HOSTS)}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make install adds it as root)")
def test_docs_page_renders_offline_and_requests_nothing(docs, tmp_path):
    page = tmp_path / "index.html"
    page.write_bytes(docs["zone"].read_bytes("reports/dbt-docs/index.html"))
    dom, requested = page_requests(page, tmp_path)
    assert requested == set()
    assert "invoice_header" in dom and "fct_tenant_margin" in dom  # the app rendered the project

    # the check itself sees a page that loads a script from elsewhere
    control = tmp_path / "control.html"
    control.write_text('<html><body><script src="https://cdn.example.com/lib.js"></script></body></html>')
    assert page_requests(control, tmp_path)[1] == {"https://cdn.example.com/lib.js"}
