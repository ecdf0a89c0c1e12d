"""
### ingest_payments

Loads the payment processor's exports under `LANDING_URL/payments/` (CSV and JSON: payment_id,
invoice_number, amount, currency, status succeeded / failed / refunded, paid_at; local or
`s3://`) into `billing.payment_txn` and matches them to issued invoices, in one transaction
(`meterline.payments.load.load_payments`).

- A file already loaded (same path and sha256, ledger `raw.payment_files`) is skipped; a payment
  state (payment_id, status) already loaded from any file is a duplicate: a re-delivered export
  changes nothing, so any run can be repeated.
- An invoice becomes `paid` only when its applied succeeded payments cover what it owes (total
  less credit notes); each such change writes `invoice.paid` to `ops.audit_log`.
- An unknown invoice number, another currency, a payment to a void or already paid invoice, an
  over- or underpayment and a refund are `billing.payment_mismatches` rows, shown in
  `marts.recon_exceptions` (category Payment, key `PAYMENT_MISMATCH:<payment_id>`) after the next
  dbt build; never a silent status change.
- Bad rows go to `raw.payments_rejected` with file, line and reason; the rest loads. A file that
  cannot be parsed fails the run after the others have loaded, naming it, without retries.

Exports are complete files, found by the ledger rather than by date, so missed days need no
catch-up. On success the asset `warehouse://raw/payments` is updated.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from meterline.assets import RAW_PAYMENTS
from meterline.config import dag_defaults


@dag(
    dag_id="ingest_payments",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    # Every run reads every export not yet loaded: a missed day is picked up by the next run.
    catchup=False,
    max_active_runs=1,
    tags=["meterline", "ingest", "payments", "billing"],
    default_args=dag_defaults(),
    doc_md=__doc__,
)
def ingest_payments():
    @task(outlets=[RAW_PAYMENTS])
    def load_exports() -> dict[str, int]:
        import logging

        from meterline.connections import warehouse_conninfo
        from meterline.payments.load import load_payments

        result = load_payments(warehouse_conninfo(), actor="airflow:ingest_payments")
        logging.getLogger("airflow.task").info(result.summary())
        if result.unreadable:
            message = f"unreadable payment exports: {'; '.join(result.unreadable)}"
            if result.retryable:  # the landing zone failed: a retry may read them
                raise RuntimeError(message)
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(message)  # an export that is not CSV/JSON stays so on a retry
        return result.counts()

    load_exports()


ingest_payments()
