"""The warehouse tables DAGs produce and consume, as Airflow assets: defined once, here."""

from __future__ import annotations

from airflow.sdk import Asset

RAW_EVENTS = Asset("warehouse://raw/events")
RAW_CUR = Asset("warehouse://raw/cur")
RAW_CATALOG = Asset("warehouse://raw/catalog")
RAW_PAYMENTS = Asset("warehouse://raw/payments")
MARTS = Asset("warehouse://marts")
