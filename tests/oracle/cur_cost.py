"""An independent oracle for AWS's amortised and net amortised cost of one CUR line.

Written from AWS's documentation (Well-Architected Labs "CUR Query Library Help": "Reserved
Instances - Amortized", "Savings Plans - Amortized" and its "Reserved Instance and Savings Plan
Example"; the net variants from the same rule on the `*_net_*` columns), not from the SQL in
dbt_project/macros/cur_cost.sql. It reads the raw columns of a line as the CUR delivers them (a
dict of snake_case names to text, as in the files) and returns Decimals; an absent or empty
column is absent, exactly as AWS leaves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

ZERO = Decimal(0)


def _amount(line: Mapping[str, object], name: str) -> Decimal | None:
    value = line.get(name)
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _or_zero(line: Mapping[str, object], name: str) -> Decimal:
    value = _amount(line, name)
    return ZERO if value is None else value


def _net_or_gross(line: Mapping[str, object], net: str, gross: str) -> Decimal:
    value = _amount(line, net)
    return _or_zero(line, gross) if value is None else value


def amortized_cost(line: Mapping[str, object]) -> Decimal:
    """Amortised cost: what the line costs once commitments are spread over the usage they cover."""
    line_type = line.get("line_item_line_item_type")
    if line_type == "DiscountedUsage":  # usage covered by a reservation: its effective (amortised) rate
        return _or_zero(line, "reservation_effective_cost")
    if line_type == "RIFee":  # the reservation's monthly fee: only what no usage used stays here
        return _or_zero(line, "reservation_unused_amortized_upfront_fee_for_billing_period") + _or_zero(
            line, "reservation_unused_recurring_fee"
        )
    if line_type == "Fee" and line.get("reservation_reservation_a_r_n"):  # an RI's upfront payment
        return ZERO
    if line_type == "SavingsPlanCoveredUsage":
        return _or_zero(line, "savings_plan_savings_plan_effective_cost")
    if line_type in ("SavingsPlanNegation", "SavingsPlanUpfrontFee"):
        return ZERO
    if line_type == "SavingsPlanRecurringFee":  # the commitment no covered usage used
        return _or_zero(line, "savings_plan_total_commitment_to_date") - _or_zero(line, "savings_plan_used_commitment")
    return _or_zero(line, "line_item_unblended_cost")


def net_amortized_cost(line: Mapping[str, object]) -> Decimal:
    """Net amortised cost: the same, from the columns net of negotiated discounts where AWS has them."""
    line_type = line.get("line_item_line_item_type")
    if line_type == "DiscountedUsage":
        return _net_or_gross(line, "reservation_net_effective_cost", "reservation_effective_cost")
    if line_type == "RIFee":
        return _net_or_gross(
            line,
            "reservation_net_unused_amortized_upfront_fee_for_billing_period",
            "reservation_unused_amortized_upfront_fee_for_billing_period",
        ) + _net_or_gross(line, "reservation_net_unused_recurring_fee", "reservation_unused_recurring_fee")
    if line_type == "Fee" and line.get("reservation_reservation_a_r_n"):
        return ZERO
    if line_type == "SavingsPlanCoveredUsage":
        return _net_or_gross(
            line, "savings_plan_net_savings_plan_effective_cost", "savings_plan_savings_plan_effective_cost"
        )
    if line_type in ("SavingsPlanNegation", "SavingsPlanUpfrontFee"):
        return ZERO
    if line_type == "SavingsPlanRecurringFee":
        unused = amortized_cost(line)
        gross, net = _amount(line, "line_item_unblended_cost"), _amount(line, "line_item_net_unblended_cost")
        if net is not None and gross:
            return unused * (net / gross)
        gross_upfront = _amount(line, "savings_plan_amortized_upfront_commitment_for_billing_period")
        net_upfront = _amount(line, "savings_plan_net_amortized_upfront_commitment_for_billing_period")
        if net_upfront is not None and gross_upfront:
            return unused * (net_upfront / gross_upfront)
        return unused
    return _net_or_gross(line, "line_item_net_unblended_cost", "line_item_unblended_cost")
