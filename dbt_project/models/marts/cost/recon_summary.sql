{#- Raw CUR cost against allocated cost per period, service and currency (DESIGN.md
    "reconciliation"). raw_cost is summed from fact_cost_raw directly, not from the allocation's
    inputs, so a join that drops or duplicates cost shows up here. Status: failed above
    RECON_FAILURE_PCT, warning above RECON_WARNING_PCT, else ok; and failed for every row of a
    period whose lines are in more than one currency: meterline has no configured conversion for
    cost, so such a period cannot be reconciled as one bill (status_reason says so). A negative
    total (credits above usage) is reconciled like any other. -#}
with

cost_lines as (

    select * from {{ ref('fact_cost_raw') }}

),

allocated as (

    select * from {{ ref('fact_cost_allocated') }}

),

raw_by_service as (

    select
        billing_period,
        line_item_product_code as service,
        billing_currency as currency,
        sum(billed_cost) as raw_cost_exact,
        sum(case when resource_tags_user_tenant_id is not null then billed_cost else 0 end) as tagged_cost,
        count(*) as line_count
    from cost_lines
    group by billing_period, line_item_product_code, billing_currency

),

allocated_by_service as (

    select
        billing_period,
        service,
        currency,
        sum(allocated_cost) as allocated_cost,
        sum(case when is_quarantined then allocated_cost else 0 end) as quarantined_cost
    from allocated
    group by billing_period, service, currency

),

compared as (

    select
        coalesce(raw_by_service.billing_period, allocated_by_service.billing_period) as period_start,
        coalesce(raw_by_service.service, allocated_by_service.service) as service,
        coalesce(raw_by_service.currency, allocated_by_service.currency) as currency,
        {{ round_money('coalesce(raw_by_service.raw_cost_exact, 0)', 2) }} as raw_cost,
        coalesce(raw_by_service.raw_cost_exact, 0) as raw_cost_exact,
        coalesce(allocated_by_service.allocated_cost, 0) as allocated_cost,
        coalesce(allocated_by_service.quarantined_cost, 0) as quarantined_cost,
        coalesce(raw_by_service.tagged_cost, 0) as tagged_cost,
        coalesce(raw_by_service.line_count, 0) as line_count
    from raw_by_service
    full outer join allocated_by_service
        on raw_by_service.billing_period = allocated_by_service.billing_period
        and raw_by_service.service = allocated_by_service.service
        and raw_by_service.currency = allocated_by_service.currency

),

period_currencies as (

    select
        period_start,
        count(distinct currency) as currency_count,
        string_agg(distinct currency, ', ' order by currency) as currency_list
    from compared
    group by period_start

),

measured as (

    select
        *,
        allocated_cost - raw_cost as variance,
        case
            when raw_cost = 0 and allocated_cost = raw_cost then 0
            when raw_cost = 0 then 100
            else round(abs(allocated_cost - raw_cost) / abs(raw_cost) * 100, 4)
        end as variance_pct
    from compared

),

judged as (

    select
        measured.*,
        case
            when period_currencies.currency_count > 1 then format(
                'the period mixes currencies (%s) and no conversion is configured: costs are reconciled'
                ' per currency, never summed into one bill',
                period_currencies.currency_list
            )
        end as status_reason
    from measured
    inner join period_currencies
        on measured.period_start = period_currencies.period_start

)

select
    'RECON-' || to_char(period_start, 'YYYY-MM') as recon_id,
    period_start,
    service,
    currency,
    raw_cost,
    allocated_cost,
    variance,
    variance_pct,
    case
        when status_reason is not null then 'failed'
        when variance_pct > {{ var('recon_failure_pct') }} then 'failed'
        when variance_pct > {{ var('recon_warning_pct') }} then 'warning'
        else 'ok'
    end as status,
    status_reason,
    raw_cost_exact,
    tagged_cost,
    quarantined_cost,
    line_count
from judged
