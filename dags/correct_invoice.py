"""
### correct_invoice

The operations runbook's corrections, triggered by hand with params. None edits an issued
invoice; every one writes `ops.audit_log` (actor, action, resource, metadata) with the change.

Actions (param `action`):
- `void_and_regenerate` (invoice_number, reason): void the invoice and issue a new one, with a
  new number and `replaces_invoice_id`, from the current drafts, atomically;
- `void` (invoice_number, reason): void only (status `void`, reason, who, when);
- `regenerate` (invoice_number of a void invoice): issue a new invoice from its current draft;
- `credit_note` (invoice_number, reason, amount: pre-tax, empty = all that is left): a negative
  document referencing the invoice, JSON and PDF in the outbox;
- `credit` (tenant_id, amount, reason; currency: the tenant's): a manual credit applied to the
  tenant's next invoices;
- `dispute` (invoice_number, reason): the tenant contests an issued, unpaid invoice (status
  `disputed`); `resolve_dispute` (invoice_number, reason): it stands after all (back to `issued`).
  A credit note, a void or a payment in full settle a dispute too.

`actor` is who asked (recorded). A refused correction fails the task with the reason and
changes nothing; it is not retried.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from meterline.config import dag_defaults
from meterline.invoicing.actions import ACTIONS, PARAMS, used_by


@dag(
    dag_id="correct_invoice",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["meterline", "billing", "corrections"],
    default_args=dag_defaults(),
    doc_md=__doc__,
    # Only `action` and `actor` are always needed; each field's description says which actions
    # need it, and the task refuses a request that leaves one out, naming it (no retries).
    params={
        "action": Param(
            "void_and_regenerate",
            type="string",
            enum=list(ACTIONS),
            values_display={name: f"{name}: {action.summary}" for name, action in ACTIONS.items()},
        ),
        **{
            name: Param(None, type=["null", "string"], description=f"{text} ({used_by(name)})")
            for name, text in PARAMS.items()
        },
        "actor": Param("", type="string", minLength=1, description="who asked: recorded in the audit log"),
    },
)
def correct_invoice():
    @task
    def apply_correction() -> dict[str, object]:
        from meterline.connections import warehouse_conninfo
        from meterline.errors import fail_without_retry
        from meterline.invoicing import corrections

        params = dict(get_current_context()["params"])
        # A refusal (or an amount such as NaN) is a decision, not a flake: fail without retrying.
        with fail_without_retry():
            done = corrections.apply(warehouse_conninfo(), params)
        return {"action": done.action, "resource": done.resource, "documents": done.documents}

    apply_correction()


correct_invoice()
