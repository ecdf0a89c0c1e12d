"""The correct_invoice form asks only for what the chosen action needs: Airflow's own validation of
the DAG's params accepts each action with its needed fields alone, and the task, the CLI and
`corrections.apply` refuse a request that leaves one out, naming it."""

from __future__ import annotations

import copy

import pytest

from meterline import cli
from meterline.config import project_root
from meterline.invoicing import corrections
from meterline.invoicing.actions import ACTIONS

pytestmark = pytest.mark.dags

GIVEN = {"invoice_number": "INV-2025-000002", "tenant_id": "t-0001", "amount": "50", "reason": "SLA breach"}


@pytest.fixture(scope="module")
def form():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(project_root() / "dags" / "correct_invoice.py"))
    assert bag.import_errors == {}
    return bag.dags["correct_invoice"].params


def _submitted(form, conf: dict) -> dict:
    """What Airflow does with a trigger's conf: the DAG's params, updated, then validated."""
    params = copy.deepcopy(form)
    params.update(conf)
    return params.validate()


@pytest.mark.parametrize("action", ACTIONS)
def test_the_form_takes_each_action_with_only_what_it_needs(form, action):
    conf = {"action": action, "actor": "ops:carol"} | {p: GIVEN[p] for p in ACTIONS[action].needs}
    validated = _submitted(form, conf)
    assert validated["action"] == action
    left_out = set(GIVEN) - set(ACTIONS[action].needs)
    assert {p: validated[p] for p in left_out} == dict.fromkeys(left_out)


def test_the_form_still_needs_an_action_and_an_actor(form):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        _submitted(form, {"action": "refund", "actor": "ops:ann"})
    with pytest.raises(ParamValidationError):
        _submitted(form, {"action": "void", "actor": ""})


def test_each_field_says_which_actions_need_it(form):
    assert "needed by void_and_regenerate, void, regenerate, credit_note, dispute, resolve_dispute" in (
        form.get_param("invoice_number").description
    )
    assert form.get_param("amount").description.endswith("(needed by credit; optional for credit_note)")


@pytest.mark.parametrize(
    ("params", "refusal"),
    [
        ({"action": "credit", "amount": "5", "reason": "r", "actor": "ops:ann"}, "credit needs tenant_id:"),
        ({"action": "void", "invoice_number": "INV-2025-000002", "actor": "ops:ann"}, "void needs reason:"),
        (
            {"action": "dispute", "invoice_number": " ", "reason": "r", "actor": ""},
            "dispute needs actor, invoice_number:",
        ),
        ({"action": "refund", "actor": "ops:ann"}, "unknown correction 'refund': one of void_and_regenerate, void,"),
    ],
)
def test_a_request_without_what_its_action_needs_is_refused_before_anything_is_read(params, refusal):
    with pytest.raises(corrections.CorrectionRefused) as refused:
        corrections.apply("postgresql://nowhere.invalid/none", params)  # refused before connecting
    assert str(refused.value).startswith(refusal)


def test_each_cli_action_asks_for_its_own_arguments(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["invoice", "credit", "--amount", "5", "--actor", "ops:ann"])
    assert done.value.code == 2
    assert "meterline invoice credit: error: the following arguments are required: --tenant, --reason" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as done:
        cli.main(["invoice", "regenerate", "--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert "issue a new invoice for a void one" in shown and "--invoice" in shown and "--amount" not in shown
