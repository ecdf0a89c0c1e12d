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

    @property
    def root(self) -> Path:
        return project_root()


def _local_default(relative: str) -> str:
    return str(project_root() / relative)


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
    )
