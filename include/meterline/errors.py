"""Errors an operator reads: an input, or a check on the data, that a re-run cannot change.

`InputError` names the input (a period, an amount, an override, an invoice number, a dbt test)
and why it cannot be acted on. The `meterline` CLI prints it as one line and exits 2, without a
traceback; a DAG task raises it as `AirflowFailException` (`fail_without_retry`), so it fails
at once with that line in the failure alert instead of being retried into the same failure.
Light to import: DAG files use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class InputError(ValueError):
    """The input or the data is wrong, not the machinery: retrying changes nothing."""


@contextmanager
def fail_without_retry() -> Iterator[None]:
    """Inside an Airflow task: an InputError fails the task without its retries."""
    try:
        yield
    except InputError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
