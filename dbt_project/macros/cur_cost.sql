{#- AWS's amortised cost of one CUR line, by line item type, as the CUR query library documents it
    (Well-Architected Labs "CUR Query Library Help", "Reserved Instance and Savings Plan Example",
    and the CID summary_view built on it). The one place this rule is written: fact_cost_raw calls it
    for amortized_cost and net_amortized_cost, everything downstream reads those columns.

    | line item type                        | amortised                                          | net amortised (the `*_net_*` columns)                               |
    | DiscountedUsage                       | reservation_effective_cost                         | reservation_net_effective_cost                                      |
    | RIFee                                 | unused amortised upfront + unused recurring fee    | net unused amortised upfront + net unused recurring fee             |
    | Fee with a reservation ARN            | 0 (the RI's upfront payment: it reaches later      | 0                                                                   |
    |                                       | months through DiscountedUsage and RIFee)          |                                                                     |
    | SavingsPlanCoveredUsage               | savings_plan_savings_plan_effective_cost           | savings_plan_net_savings_plan_effective_cost                        |
    | SavingsPlanNegation                   | 0                                                  | 0                                                                   |
    | SavingsPlanUpfrontFee                 | 0                                                  | 0                                                                   |
    | SavingsPlanRecurringFee               | total commitment to date - used commitment         | the same x (net / gross) of the fee line, else of the amortised     |
    |                                       |                                                    | upfront commitment (AWS gives no net unused-commitment column)      |
    | anything else: Usage, Fee, Tax,       | line_item_unblended_cost                           | line_item_net_unblended_cost (AWS writes 0 on discount lines: the   |
    | Credit, Refund, EdpDiscount,          |                                                    | discount is already inside the net columns of the lines it covers)  |
    | BundledDiscount, PrivateRateDiscount  |                                                    |                                                                     |

    Net amortised: the net columns exist only when a discount applies to the account; where a
    line's net column is absent (null), its gross column stands in, so net amortised cost equals
    amortised cost on a CUR without discounts. A null amount counts as 0 (AWS leaves columns of
    other line types empty). `line` is the relation alias holding stg_cur__line_items' columns. -#}
{% macro cur_amortized_cost(line, net=false) -%}
    {%- set c = line ~ '.' -%}
    {%- if not net -%}
    case
        when {{ c }}line_item_line_item_type = 'DiscountedUsage'
            then coalesce({{ c }}reservation_effective_cost, 0)
        when {{ c }}line_item_line_item_type = 'RIFee'
            then coalesce({{ c }}reservation_unused_amortized_upfront_fee_for_billing_period, 0)
                + coalesce({{ c }}reservation_unused_recurring_fee, 0)
        when {{ c }}line_item_line_item_type = 'Fee' and coalesce({{ c }}reservation_reservation_a_r_n, '') <> ''
            then 0
        when {{ c }}line_item_line_item_type = 'SavingsPlanCoveredUsage'
            then coalesce({{ c }}savings_plan_savings_plan_effective_cost, 0)
        when {{ c }}line_item_line_item_type in ('SavingsPlanNegation', 'SavingsPlanUpfrontFee')
            then 0
        when {{ c }}line_item_line_item_type = 'SavingsPlanRecurringFee'
            then coalesce({{ c }}savings_plan_total_commitment_to_date, 0) - coalesce({{ c }}savings_plan_used_commitment, 0)
        else coalesce({{ c }}line_item_unblended_cost, 0)
    end
    {%- else -%}
    case
        when {{ c }}line_item_line_item_type = 'DiscountedUsage'
            then coalesce({{ c }}reservation_net_effective_cost, {{ c }}reservation_effective_cost, 0)
        when {{ c }}line_item_line_item_type = 'RIFee'
            then coalesce(
                    {{ c }}reservation_net_unused_amortized_upfront_fee_for_billing_period,
                    {{ c }}reservation_unused_amortized_upfront_fee_for_billing_period,
                    0
                )
                + coalesce({{ c }}reservation_net_unused_recurring_fee, {{ c }}reservation_unused_recurring_fee, 0)
        when {{ c }}line_item_line_item_type = 'Fee' and coalesce({{ c }}reservation_reservation_a_r_n, '') <> ''
            then 0
        when {{ c }}line_item_line_item_type = 'SavingsPlanCoveredUsage'
            then coalesce(
                {{ c }}savings_plan_net_savings_plan_effective_cost, {{ c }}savings_plan_savings_plan_effective_cost, 0
            )
        when {{ c }}line_item_line_item_type in ('SavingsPlanNegation', 'SavingsPlanUpfrontFee')
            then 0
        {# Cast back to the exact type: on Spark a decimal division's result has 6 decimals, and
           without the cast the whole case expression (every line) would take that type. #}
        when {{ c }}line_item_line_item_type = 'SavingsPlanRecurringFee'
            then cast((coalesce({{ c }}savings_plan_total_commitment_to_date, 0) - coalesce({{ c }}savings_plan_used_commitment, 0))
                * case
                    when {{ c }}line_item_net_unblended_cost is not null and {{ c }}line_item_unblended_cost <> 0
                        then {{ c }}line_item_net_unblended_cost / {{ c }}line_item_unblended_cost
                    when {{ c }}savings_plan_net_amortized_upfront_commitment_for_billing_period is not null
                        and {{ c }}savings_plan_amortized_upfront_commitment_for_billing_period <> 0
                        then {{ c }}savings_plan_net_amortized_upfront_commitment_for_billing_period
                            / {{ c }}savings_plan_amortized_upfront_commitment_for_billing_period
                    else 1
                end as {{ exact_numeric() }})
        else coalesce({{ c }}line_item_net_unblended_cost, {{ c }}line_item_unblended_cost, 0)
    end
    {%- endif -%}
{%- endmacro %}
