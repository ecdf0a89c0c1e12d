{#- The budgets as of this build: one row per budget for the month of the run's as-of day (var
    as_of), with last_refreshed_at = when this build ran (an audit time, the wall clock). The daily refresh rebuilds
    it; a budget refreshed more than 24 h before the gate's suites run (or never) fails the
    freshness suite (check budgets_refreshed_within_24h) and blocks the period. -#}
with

budgets as (

    select * from {{ ref('stg_catalog__budgets') }}

)

select
    budget_id,
    case when scope_type = 'tenant' then scope_id end as tenant_id,
    case when scope_type = 'service' then scope_id end as service,
    scope_type,
    scope_id,
    cast(date_trunc('month', {{ as_of_date() }}) as date) as period_start,
    amount,
    currency,
    thresholds,
    current_timestamp as last_refreshed_at
from budgets
