{#- Allocation exceptions: every service whose allocated cost does not match its raw cost
    (recon_summary not ok), and every quarantine pool, by reason: cost nobody carries yet. -#}
with

summary as (

    select * from {{ ref('recon_summary') }}

),

allocated as (

    select * from {{ ref('fact_cost_allocated') }}

),

variances as (

    select
        recon_id,
        period_start,
        'Allocation' as category,
        'variance:' || service as key,
        format(
            '%s: allocated %s vs raw %s (%s %%, %s)', service, allocated_cost, raw_cost, variance_pct, status
        ) as detail,
        variance as amount
    from summary
    where status <> 'ok'

),

quarantine as (

    select
        'RECON-' || to_char(billing_period, 'YYYY-MM') as recon_id,
        billing_period as period_start,
        'Allocation' as category,
        'quarantine:' || service || ':' || quarantine_reason as key,
        format(
            '%s: %s in the quarantine pool (%s) over %s day(s)',
            service, sum(allocated_cost), quarantine_reason, count(distinct usage_date)
        ) as detail,
        sum(allocated_cost) as amount
    from allocated
    where is_quarantined
    group by billing_period, service, quarantine_reason

)

select * from variances
union all
select * from quarantine
