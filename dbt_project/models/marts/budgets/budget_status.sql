{#- Per budget and month: actual spend (tenant: invoice_header's pre-tax amount after credits;
    service: fact_cost_raw's billed cost, USD) in the budget's currency (reference rates of the
    currencies seed), the run-rate forecast for the month as of the run's as-of day (var as_of),
    pct_used, the thresholds crossed, and the state: breached at 100 % or more, warning from the
    lowest threshold, else ok. -#}
with

budgets as (

    select * from {{ ref('stg_catalog__budgets') }}

),

invoices as (

    select * from {{ ref('invoice_header') }}

),

costs as (

    select * from {{ ref('fact_cost_raw') }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

spend as (

    select 'tenant' as scope_type, tenant_id as scope_id, period_start, currency,
        sum(coalesce(subtotal, 0) - coalesce(credits, 0)) as spend
    from invoices
    group by 1, 2, 3, 4

    union all

    select 'service', line_item_product_code, billing_period, 'USD', sum(billed_cost)
    from costs
    group by 1, 2, 3, 4

),

periods as (

    -- Months up to the as-of day's: a later month's drafts (the close builds the next month's
    -- open draft) are not spend yet, and must not cross a threshold before the month began.
    select distinct scope_type, scope_id, period_start from spend
    where period_start <= cast(date_trunc('month', {{ as_of_date() }}) as date)
    union
    select scope_type, scope_id, cast(date_trunc('month', {{ as_of_date() }}) as date) from budgets

),

actuals as (

    select
        budgets.budget_id,
        periods.period_start,
        budgets.amount,
        budgets.currency,
        budgets.thresholds,
        target.minor_units,
        coalesce(sum(spend.spend * source_rate.usd_per_unit / target.usd_per_unit), 0) as actual_exact,
        cast((periods.period_start + interval '1 month') as date) - periods.period_start as days_in_period,
        least(greatest({{ as_of_date() }} - periods.period_start + 1, 0),
            cast((periods.period_start + interval '1 month') as date) - periods.period_start) as days_elapsed
    from budgets
    inner join periods
        on periods.scope_type = budgets.scope_type
        and periods.scope_id = budgets.scope_id
    inner join currencies as target
        on target.currency = budgets.currency
    left join spend
        on spend.scope_type = periods.scope_type
        and spend.scope_id = periods.scope_id
        and spend.period_start = periods.period_start
    left join currencies as source_rate
        on source_rate.currency = spend.currency
    group by 1, 2, 3, 4, 5, 6, 8, 9

),

measured as (

    select
        *,
        {{ round_money('actual_exact', 'minor_units') }} as actual,
        case
            when days_elapsed = 0 then 0
            else {{ round_money('actual_exact * days_in_period / days_elapsed', 'minor_units') }}
        end as forecast,
        round(actual_exact / amount * 100, 2) as pct_used
    from actuals

)

select
    budget_id,
    period_start,
    amount,
    currency,
    actual,
    forecast,
    pct_used,
    days_elapsed,
    days_in_period,
    thresholds,
    array(select t from unnest(thresholds) as t where t <= pct_used order by t) as thresholds_crossed,
    case
        when pct_used >= 100 then 'breached'
        when pct_used >= (select min(t) from unnest(thresholds) as t) then 'warning'
        else 'ok'
    end as state
from measured
