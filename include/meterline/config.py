"""Runtime settings, read from the environment (see the README's configuration table)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path


def project_root() -> Path:
    """The checkout: the folder holding `dbt_project/` and `dags/`.

    `METERLINE_HOME` wins (docker-compose sets it); otherwise walk up from this file, which
    is installed editable from `include/meterline/`.
    """
    if home := os.environ.get("METERLINE_HOME"):
        return Path(home).resolve()
    return Path(__file__).resolve().parents[2]


def _decimal(name: str, default: str) -> Decimal:
    return Decimal(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    warehouse_url: str | None
    landing_url: str
    outbox_url: str
    signing_key: str | None
    tenant_tag_key: str
    recon_warning_pct: Decimal
    recon_failure_pct: Decimal
    event_rejection_pct: Decimal
    events_max_file_bytes: int
    events_max_line_bytes: int
    events_max_properties_bytes: int
    events_stale_after_days: int
    # The documents (invoicing.documents): who issues them and when they are due.
    seller_name: str | None = None
    seller_address: str | None = None
    seller_vat_id: str | None = None
    payment_terms_days: int = 30
    issue_zero_invoices: bool = False  # read by dbt too (dbt_project.yml var issue_zero_invoices)

    @property
    def root(self) -> Path:
        return project_root()


def _local_default(relative: str) -> str:
    return str(project_root() / relative)


def _lines(name: str) -> str | None:
    """A multi-line setting (an address): real newlines or `\\n` between its lines."""
    value = os.environ.get(name, "").replace("\\n", "\n").strip()
    return "\n".join(line.strip() for line in value.splitlines() if line.strip()) or None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("true", "1", "yes")


def settings() -> Settings:
    """Read settings now: the environment may change between calls (tests, the CLI)."""
    return Settings(
        warehouse_url=os.environ.get("WAREHOUSE_URL") or None,
        landing_url=os.environ.get("LANDING_URL") or _local_default("data/landing"),
        outbox_url=os.environ.get("OUTBOX_URL") or _local_default("data/outbox"),
        signing_key=os.environ.get("METERING_SIGNING_KEY") or None,
        tenant_tag_key=os.environ.get("TENANT_TAG_KEY", "user:tenant_id"),
        recon_warning_pct=_decimal("RECON_WARNING_PCT", "0.5"),
        recon_failure_pct=_decimal("RECON_FAILURE_PCT", "1"),
        event_rejection_pct=_decimal("EVENT_REJECTION_PCT", "1"),
        # Bounds on one usage-event file (meterline.events.validate.Limits explains each default).
        events_max_file_bytes=int(os.environ.get("EVENTS_MAX_FILE_BYTES", 2**31 - 1)),
        events_max_line_bytes=int(os.environ.get("EVENTS_MAX_LINE_BYTES", 2**30 - 1)),
        events_max_properties_bytes=int(os.environ.get("EVENTS_MAX_PROPERTIES_BYTES", 2**28 - 1)),
        events_stale_after_days=int(os.environ.get("EVENTS_STALE_AFTER_DAYS", 90)),
        seller_name=os.environ.get("INVOICE_SELLER_NAME", "").strip() or None,
        seller_address=_lines("INVOICE_SELLER_ADDRESS"),
        seller_vat_id=os.environ.get("INVOICE_SELLER_VAT_ID", "").strip() or None,
        payment_terms_days=int(os.environ.get("INVOICE_PAYMENT_TERMS_DAYS", 30)),
        issue_zero_invoices=_flag("ISSUE_ZERO_INVOICES"),
    )


def dag_defaults(retries: int = 2) -> dict:
    """default_args every meterline DAG shares: owner, retries with exponential back-off, and the
    failure alert (meterline.alerts).

    `METERLINE_RETRY_DELAY_SECONDS` (default 60) sets the first delay; tests set it to 1 so a
    failing task fails fast instead of waiting out real back-off.
    """
    from datetime import timedelta

    from meterline.alerts import FailureNotifier

    delay = timedelta(seconds=float(os.environ.get("METERLINE_RETRY_DELAY_SECONDS", "60")))
    return {
        "owner": "meterline",
        "retries": retries,
        "retry_delay": delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": max(delay * 10, timedelta(seconds=1)),
        "on_failure_callback": FailureNotifier(),
    }
