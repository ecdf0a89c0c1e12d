"""The data-quality suites the invoice gate reads, as code: great-expectations 1.x against the
warehouse (one SQL datasource, one query asset per suite scoped to the period), and the dbt
tests on the billing models. Every expectation evaluated becomes one `ops.dq_results` row.

Suites and the scope of what they find:
- `usage_hourly` (period): keys unique, counts non-negative, hours on the hour and inside P;
- `fact_cost_allocated` (period): allocated equals raw CUR cost per service and currency, to the
  cent (a negative total, credits above usage, passes: only a leak blocks);
- `invoice_coverage` (period): every subscription active in P has exactly one draft, and no
  draft exists for a subscription that was not active;
- `invoice_drafts` (invoice), on the figures dbt computed in `invoice_drafts`: totals
  consistent, subtotal and credits equal to the lines, tax = rate x taxable, currency valid,
  total not negative, a tax rate and every price present; each failure names the drafts
  (invoice_id) it concerns;
- `events_rejected` (period): the share of P's event rows rejected is under the threshold;
- `freshness` (period): events through the end of P, a loaded CUR delivery for P, and budget
  data refreshed within 24 h of the suites' run (every budget of the catalog in
  `marts.budget_master` with a recent `last_refreshed_at`; no budgets at all passes). Stale
  budgets block the period like stale feeds do: the issue asks for it, and a close must not run
  on budgets nobody has measured for a day (override the check with a justification if needed);
- `dbt_billing` (period): the tests of the close's one dbt build (recorded by
  `meterline.close.build`), or `dbt test` on the billing models when the suites run alone.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from meterline import warehouse
from meterline.config import settings
from meterline.money import minor_units_table
from meterline.period import Period

log = logging.getLogger(__name__)

GX_SUITES = (
    "usage_hourly",
    "fact_cost_allocated",
    "invoice_coverage",
    "invoice_drafts",
    "events_rejected",
    "freshness",
)
DBT_SUITE = "dbt_billing"
DBT_BILLING_SELECT = "invoice_drafts invoice_draft_lines invoice_header"
# The CUR cost the allocation distributes and recon_summary compares: fact_cost_raw.billed_cost
# (net unblended where AWS gives it, unblended otherwise).
RAW_COST_COLUMN = "billed_cost"
# Events must reach the last day of the period: the feed is a daily partition.
EVENTS_FRESH_WITHIN = timedelta(days=1)
# Budget data (marts.budget_master.last_refreshed_at) is stale when older than this at the
# suites' run (the database's now()): the refresh_budgets DAG runs daily.
BUDGETS_FRESH_WITHIN = timedelta(hours=24)


@dataclass(frozen=True)
class Expectation:
    label: str
    build: Callable[[Any], Any]  # gx module -> an expectation instance
    # When it fails, the reason recorded (detail.reason, read by the gate): this template with
    # {values} replaced by the unexpected values (the column holds each failing row's explanation).
    explain: str | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    requires: tuple[str, ...]  # relations that must exist for the query to mean anything
    query: sql.Composable
    expectations: tuple[Expectation, ...]
    key_column: str | None = None  # invoice-scope suites: the column naming the failing draft


@dataclass
class ExpectationResult:
    suite: str
    expectation: str
    scope: str
    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None
    failing_keys: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuiteRun:
    dq_run_id: str
    period: Period
    results: list[ExpectationResult]
    seconds: float = 0.0

    @property
    def failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success]

    @property
    def success(self) -> bool:
        return not self.failures


def _lit(value: Any) -> sql.Literal:
    return sql.Literal(value)


def _budget_master(exists: bool) -> sql.Composable:
    """marts.budget_master, or an empty stand-in before dbt ever built it (every budget is then
    'never refreshed')."""
    if exists:
        return sql.SQL("marts.budget_master")
    return sql.SQL("(select null::text as budget_id, null::timestamptz as last_refreshed_at where false)")


def _suites(
    period: Period, rejection_pct: Decimal, currencies: list[str], *, budget_master_exists: bool = True
) -> list[Suite]:
    start, end = _lit(period.start), _lit(period.end)
    first_hour = datetime.combine(period.start, datetime.min.time(), UTC)
    last_hour = datetime.combine(period.end, datetime.min.time(), UTC) - timedelta(hours=1)
    events_due = datetime.combine(period.end, datetime.min.time(), UTC) - EVENTS_FRESH_WITHIN
    ex = _expectation
    return [
        Suite(
            "usage_hourly",
            ("marts.usage_hourly",),
            sql.SQL(
                "select subscription_id::text as subscription_id, event_type, hour, event_count, total_tokens,"
                " extract(epoch from hour - date_trunc('hour', hour)) as seconds_past_hour"
                " from marts.usage_hourly"
                " where hour is null or (hour >= {start}::timestamptz and hour < {end}::timestamptz)"
            ).format(start=start, end=end),
            (
                ex(
                    "keys_unique",
                    "ExpectCompoundColumnsToBeUnique",
                    column_list=["subscription_id", "event_type", "hour"],
                ),
                ex("event_count_non_negative", "ExpectColumnValuesToBeBetween", column="event_count", min_value=0),
                ex("total_tokens_non_negative", "ExpectColumnValuesToBeBetween", column="total_tokens", min_value=0),
                ex("event_count_present", "ExpectColumnValuesToNotBeNull", column="event_count"),
                ex("hour_present", "ExpectColumnValuesToNotBeNull", column="hour"),
                ex("hours_on_the_hour", "ExpectColumnValuesToBeInSet", column="seconds_past_hour", value_set=[0]),
                ex(
                    "hours_inside_period",
                    "ExpectColumnValuesToBeBetween",
                    column="hour",
                    min_value=first_hour,
                    max_value=last_hour,
                ),
            ),
        ),
        Suite(
            "fact_cost_allocated",
            ("marts.fact_cost_raw", "marts.fact_cost_allocated"),
            sql.SQL(
                "with raw as ("
                "  select line_item_product_code as service, billing_currency as currency,"
                "   sum({cost}) as raw_cost from marts.fact_cost_raw"
                "  where left(billing_period::text, 7) = {label} group by 1, 2),"
                " allocated as ("
                "  select service, currency, sum(allocated_cost) as allocated_cost from marts.fact_cost_allocated"
                "  where left(billing_period::text, 7) = {label} group by 1, 2)"
                " select coalesce(raw.service, allocated.service) as service,"
                "  coalesce(raw.currency, allocated.currency) as currency,"
                "  coalesce(raw_cost, 0) as raw_cost, coalesce(allocated_cost, 0) as allocated_cost,"
                "  abs(coalesce(raw_cost, 0) - coalesce(allocated_cost, 0)) as difference"
                " from raw full join allocated on raw.service = allocated.service and raw.currency = allocated.currency"
            ).format(cost=sql.Identifier(RAW_COST_COLUMN), label=_lit(period.label)),
            (
                # Conservation to the cent: allocated (quarantine included) equals raw per service
                # and currency. Only a leak blocks: a negative total (credits or refunds above a
                # service's usage) is a legitimate amount, allocated and reconciled like any other.
                ex(
                    "conservation_per_service",
                    "ExpectColumnValuesToBeBetween",
                    column="difference",
                    min_value=0,
                    max_value=0.005,
                ),
            ),
        ),
        Suite(
            "invoice_coverage",
            ("marts.invoice_header", "raw.catalog_subscriptions"),
            sql.SQL(
                "with active as ("
                "  select distinct subscription_id from raw.catalog_subscriptions"
                "  where started_at < {end}::timestamptz and (ended_at is null or ended_at > {start}::timestamptz)),"
                " drafts as ("
                "  select subscription_id, count(*) as drafts from marts.invoice_header"
                "  where period_start = {start} group by 1)"
                " select coalesce(a.subscription_id, d.subscription_id)::text as subscription_id,"
                "  coalesce(d.drafts, 0) as drafts, a.subscription_id is not null as is_active"
                " from active a full join drafts d on a.subscription_id = d.subscription_id"
            ).format(start=start, end=end),
            (
                ex(
                    "one_invoice_per_active_subscription",
                    "ExpectColumnValuesToBeBetween",
                    column="drafts",
                    min_value=1,
                    max_value=1,
                ),
                ex(
                    "no_invoice_without_active_subscription",
                    "ExpectColumnValuesToBeInSet",
                    column="is_active",
                    value_set=[True],
                ),
            ),
        ),
        Suite(
            "invoice_drafts",
            ("marts.invoice_drafts", "marts.invoice_draft_lines"),
            # Assertions on the figures dbt computed (invoice_drafts, invoice_draft_lines), draft by
            # draft: a draft failing one is blocked on its own, the others go out.
            sql.SQL(
                "with lines as ("
                "  select invoice_id,"
                "   coalesce(sum(amount) filter (where kind <> 'credit'), 0) as lines_subtotal,"
                "   coalesce(-sum(amount) filter (where kind = 'credit'), 0) as lines_credits,"
                "   bool_and(amount is not null) as amounts_present"
                "  from marts.invoice_draft_lines group by 1)"
                " select d.invoice_id, d.currency, d.subtotal, d.credits, d.tax, d.total,"
                "  coalesce(d.total = d.subtotal - d.credits + d.tax, false) as is_total_consistent,"
                "  coalesce(d.subtotal = coalesce(l.lines_subtotal, 0)"
                "   and d.credits = coalesce(l.lines_credits, 0), false) as is_subtotal_from_lines,"
                "  coalesce(d.credits between 0 and d.subtotal, false) as is_credit_within_subtotal,"
                "  coalesce(d.tax = round(d.tax_rate * (d.subtotal - d.credits), d.minor_units), false)"
                "   as is_tax_rate_times_taxable,"
                "  coalesce(l.amounts_present, true) and d.subtotal is not null as has_prices,"
                "  d.tax_rate is not null as has_tax_rate"
                " from marts.invoice_drafts d"
                " left join lines l on l.invoice_id = d.invoice_id"
                " where d.period_start = {start}"
            ).format(start=start),
            (
                ex("totals_consistent", "ExpectColumnValuesToBeInSet", column="is_total_consistent", value_set=[True]),
                ex(
                    "subtotal_equals_lines",
                    "ExpectColumnValuesToBeInSet",
                    column="is_subtotal_from_lines",
                    value_set=[True],
                ),
                ex(
                    "credits_within_subtotal",
                    "ExpectColumnValuesToBeInSet",
                    column="is_credit_within_subtotal",
                    value_set=[True],
                ),
                ex(
                    "tax_is_rate_times_taxable",
                    "ExpectColumnValuesToBeInSet",
                    column="is_tax_rate_times_taxable",
                    value_set=[True],
                ),
                ex("currency_valid", "ExpectColumnValuesToBeInSet", column="currency", value_set=currencies),
                ex("currency_present", "ExpectColumnValuesToNotBeNull", column="currency"),
                ex("no_negative_total", "ExpectColumnValuesToBeBetween", column="total", min_value=0),
                ex("prices_present", "ExpectColumnValuesToBeInSet", column="has_prices", value_set=[True]),
                ex("tax_rate_present", "ExpectColumnValuesToBeInSet", column="has_tax_rate", value_set=[True]),
            ),
            key_column="invoice_id",
        ),
        Suite(
            "events_rejected",
            ("raw.events", "raw.events_rejected"),
            sql.SQL(
                "with counts as ("
                "  select (select count(*) from raw.events"
                "          where partition_date >= {start} and partition_date < {end}) as accepted,"
                "         (select count(*) from raw.events_rejected"
                "          where partition_date >= {start} and partition_date < {end}) as rejected)"
                " select accepted, rejected,"
                "  case when accepted + rejected = 0 then 0"
                "       else round(100.0 * rejected / (accepted + rejected), 4) end as rejection_pct"
                " from counts"
            ).format(start=start, end=end),
            (
                ex(
                    "rejection_rate_under_threshold",
                    "ExpectColumnValuesToBeBetween",
                    column="rejection_pct",
                    min_value=0,
                    max_value=float(rejection_pct),
                ),
            ),
        ),
        Suite(
            "freshness",
            ("raw.events", "raw.cur_deliveries", "raw.catalog_budgets"),
            sql.SQL(
                "select"
                ' (select max("timestamp") from raw.events'
                '  where "timestamp" >= {start}::timestamptz and "timestamp" < {end}::timestamptz)'
                "   as last_event_at,"
                " (select count(*) from raw.cur_deliveries"
                "  where billing_period = {start} and status = 'loaded' and superseded_by is null)"
                "   as cur_deliveries,"
                # One text naming each stale budget and its age; null when every budget is fresh.
                " (select string_agg(b.budget_id || ': ' || case when m.last_refreshed_at is null"
                "    then 'never refreshed (not in marts.budget_master)'"
                "    else 'last refreshed ' || to_char(m.last_refreshed_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')"
                "     || ' UTC, ' || round(extract(epoch from now() - m.last_refreshed_at) / 3600, 1) || ' h ago' end,"
                "    '; ' order by b.budget_id)"
                "  from raw.catalog_budgets b left join {master} m on m.budget_id = b.budget_id"
                "  where m.last_refreshed_at is null or m.last_refreshed_at < now() - {max_age}::interval)"
                "   as stale_budgets"
            ).format(
                start=start,
                end=end,
                master=_budget_master(budget_master_exists),
                max_age=_lit(BUDGETS_FRESH_WITHIN),
            ),
            (
                ex(
                    "events_through_period_end",
                    "ExpectColumnValuesToBeBetween",
                    column="last_event_at",
                    min_value=events_due,
                    mostly=1.0,
                ),
                ex("events_present", "ExpectColumnValuesToNotBeNull", column="last_event_at"),
                ex("cur_delivery_for_period", "ExpectColumnValuesToBeBetween", column="cur_deliveries", min_value=1),
                _expectation(
                    "budgets_refreshed_within_24h",
                    "ExpectColumnValuesToBeNull",
                    explain=(
                        f"stale budget data (older than {BUDGETS_FRESH_WITHIN.total_seconds() / 3600:.0f} h"
                        " when the suites ran): {values}; refresh it (DAG refresh_budgets, or meterline budgets"
                        " refresh) and run the suites again"
                    ),
                    column="stale_budgets",
                ),
            ),
        ),
    ]


def _expectation(label: str, kind: str, explain: str | None = None, **kwargs: Any) -> Expectation:
    return Expectation(label, lambda gx: getattr(gx.expectations, kind)(**kwargs), explain)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _missing_relations(conn: psycopg.Connection, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if conn.execute("select to_regclass(%s)", [name]).fetchone()[0] is None]


def _gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context


def _run_gx_suite(gx: Any, context: Any, datasource: Any, suite: Suite, query: str) -> list[ExpectationResult]:
    # GX accepts only queries starting with SELECT: CTEs go in a subquery.
    asset = datasource.add_query_asset(name=suite.name, query=f"select * from ({query}) as {suite.name}")
    batch = asset.add_batch_definition_whole_table(f"{suite.name}_batch")
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
    labels, explains = {}, {}
    for expectation in suite.expectations:
        instance = gx_suite.add_expectation(expectation.build(gx))
        labels[instance.id] = expectation.label
        explains[instance.id] = expectation.explain
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
    )
    result_format: dict[str, Any] = {"result_format": "SUMMARY"}
    if suite.key_column:
        result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": [suite.key_column]}
    validation = definition.run(result_format=result_format)
    results = []
    for item in validation.results:
        outcome = item.result or {}
        keys = sorted(
            {str(row[suite.key_column]) for row in outcome.get("unexpected_index_list") or [] if suite.key_column}
        )
        observed = outcome.get("observed_value")
        if observed is None and "unexpected_count" in outcome:
            observed = {
                "unexpected_count": outcome.get("unexpected_count"),
                "unexpected_percent": outcome.get("unexpected_percent"),
                "partial_unexpected_list": (outcome.get("partial_unexpected_list") or [])[:20],
            }
        error = (item.exception_info or {}).get("exception_message") if item.exception_info else None
        explain = explains.get(item.expectation_config.id)
        reason = None
        if explain and not item.success:
            values = "; ".join(str(v) for v in outcome.get("partial_unexpected_list") or []) or "see observed_value"
            reason = explain.replace("{values}", values)
        results.append(
            ExpectationResult(
                suite=suite.name,
                expectation=labels.get(item.expectation_config.id, item.expectation_config.type),
                # An invoice-level expectation that fails without naming drafts (a query error)
                # cannot block just some invoices: it blocks the period.
                scope="invoice" if suite.key_column and (item.success or keys) else "period",
                success=bool(item.success),
                observed_value=_plain(observed),
                unexpected_count=outcome.get("unexpected_count"),
                failing_keys=keys,
                detail=_plain(
                    {"expectation_type": item.expectation_config.type, "kwargs": item.expectation_config.kwargs}
                    | ({"error": error} if error else {})
                    | ({"reason": reason} if reason else {})
                ),
            )
        )
    return results


def dbt_test_results(run_results: list[dict[str, Any]]) -> list[ExpectationResult]:
    """The data tests and unit tests of a dbt run (its run_results.json `results`), one result each."""
    return [
        ExpectationResult(
            suite=DBT_SUITE,
            expectation=r["unique_id"].removeprefix("test.meterline.").removeprefix("unit_test.meterline."),
            scope="period",
            success=r["status"] == "pass",
            observed_value={"status": r["status"], "failures": r.get("failures")},
            unexpected_count=r.get("failures"),
            detail={"message": r.get("message")},
        )
        for r in run_results
        if r["unique_id"].startswith(("test.", "unit_test."))
    ]


def _run_dbt_tests(conninfo: str, select: str, period: Period) -> list[ExpectationResult]:
    from meterline import transform

    args = ["test", "--select", *select.split()]
    run_results, output = transform.run_for_results(args, conninfo, as_of=period.closes_at)
    if run_results is None:
        return [ExpectationResult(DBT_SUITE, "dbt_test_ran", "period", False, detail={"output": output})]
    results = dbt_test_results(run_results)
    if not results:
        return [
            ExpectationResult(
                DBT_SUITE, "tests_selected", "period", False, detail={"reason": f"no dbt test selected by {select!r}"}
            )
        ]
    return results


def store_results(conninfo: str, period: Period, results: list[ExpectationResult], started: float) -> SuiteRun:
    """Record one data-quality run's results in ops.dq_results (the gate reads the latest run of
    each suite) and return it."""
    run_id = f"dq-{period.label}-{uuid.uuid4().hex[:12]}"
    with warehouse.transaction(conninfo) as conn:
        for r in results:
            conn.execute(
                "insert into ops.dq_results (dq_run_id, period_start, suite, expectation, scope, success,"
                " observed_value, unexpected_count, failing_keys, detail)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    run_id,
                    period.start,
                    r.suite,
                    r.expectation,
                    r.scope,
                    r.success,
                    Jsonb(r.observed_value),
                    r.unexpected_count,
                    r.failing_keys,
                    Jsonb(r.detail),
                ],
            )
    run = SuiteRun(run_id, period, results, time.monotonic() - started)
    log.info(
        "dq run %s for %s: %d expectations, %d failed (%.1fs)",
        run_id,
        period,
        len(results),
        len(run.failures),
        run.seconds,
    )
    return run


def run_suites(
    conninfo: str,
    period: str | Period,
    *,
    suites: tuple[str, ...] = GX_SUITES,
    dbt_select: str | None = DBT_BILLING_SELECT,
    rejection_pct: Decimal | None = None,
) -> SuiteRun:
    """Run the suites for `period`, store every result in ops.dq_results, and return them.

    A suite whose tables are missing records one failing `relation_present` result instead of
    raising: the gate must see it. `dbt_select=None` skips the dbt tests.
    """
    period = Period.parse(period)
    started = time.monotonic()
    threshold = rejection_pct if rejection_pct is not None else settings().event_rejection_pct
    results: list[ExpectationResult] = []
    with warehouse.connect(conninfo, autocommit=True) as conn:
        has_master = not _missing_relations(conn, ("marts.budget_master",))
        wanted = [
            s
            for s in _suites(period, threshold, sorted(minor_units_table()), budget_master_exists=has_master)
            if s.name in suites
        ]
        runnable = []
        for suite in wanted:
            missing = _missing_relations(conn, suite.requires)
            if missing:
                results.append(
                    ExpectationResult(
                        suite.name,
                        "relation_present",
                        "period",
                        False,
                        observed_value={"missing": missing},
                        detail={"reason": f"missing {', '.join(missing)}: build it before running the suite"},
                    )
                )
            else:
                runnable.append((suite, suite.query.as_string(conn)))
    if runnable:
        gx, context = _gx_context()
        with warnings.catch_warnings():
            # The generic SQL datasource on purpose: the Postgres one rejects unix-socket URLs.
            warnings.simplefilter("ignore")
            datasource = context.data_sources.add_sql(
                name="warehouse", connection_string=warehouse.sqlalchemy_url(conninfo)
            )
        for suite, query in runnable:
            results += _run_gx_suite(gx, context, datasource, suite, query)
    if dbt_select:
        results += _run_dbt_tests(conninfo, dbt_select, period)
    return store_results(conninfo, period, results, started)
