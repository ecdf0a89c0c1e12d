{#- Allocation exceptions: every service whose allocated cost does not match its raw cost
    (recon_summary not ok on its variance), every quarantine pool, by reason and currency: cost
    nobody carries yet, and every period whose cost is in several currencies with no conversion
    configured (one row naming each currency's raw total: never summed). -#}
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
        'variance:' || service || case when currency = 'USD' then '' else ':' || currency end as key,
        format(
            '%s: allocated %s vs raw %s %s (%s %%, %s)', service, allocated_cost, raw_cost, currency, variance_pct, status
        ) as detail,
        variance as amount
    from summary
    where variance <> 0 and status <> 'ok'

),

currency_mix as (

    select
        recon_id,
        period_start,
        'Allocation' as category,
        'currency_mix' as key,
        format(
            '%s; raw cost per currency: %s',
            min(status_reason),
            string_agg(currency || ' ' || raw_cost, ', ' order by currency)
        ) as detail,
        cast(null as numeric) as amount
    from (
        select recon_id, period_start, currency, status_reason, sum(raw_cost) as raw_cost
        from summary
        where status_reason is not null
        group by recon_id, period_start, currency, status_reason
    ) as per_currency
    group by recon_id, period_start

),

quarantine as (

    select
        'RECON-' || to_char(billing_period, 'YYYY-MM') as recon_id,
        billing_period as period_start,
        'Allocation' as category,
        'quarantine:' || service || ':' || quarantine_reason
        || case when currency = 'USD' then '' else ':' || currency end as key,
        format(
            '%s: %s %s in the quarantine pool (%s) over %s day(s)',
            service, sum(allocated_cost), currency, quarantine_reason, count(distinct usage_date)
        ) as detail,
        sum(allocated_cost) as amount
    from allocated
    where is_quarantined
    group by billing_period, service, currency, quarantine_reason

)

select * from variances
union all
select * from currency_mix
union all
select * from quarantine
