-- Late usage: events of a month that was already issued, loaded after its invoice's issued_at.
-- The issued invoice never changes; the difference goes on the subscription's next draft that
-- is not issued yet, as `adjustment` lines.
--
-- The amount is exact whatever the price model: the issued month is priced again now (with the
-- catalog as it was at its close, like at issue) and compared, per kind and metric, with the
-- lines as issued (billing.invoice_line_items) for usage, overage and the minimum-commitment
-- true-up (late usage may shrink a true-up already billed). Only (subscription, month)s with
-- late events are adjusted, so nothing else (a catalog correction, say) is billed this way.
-- A subscription with no later month to bill (ended) keeps its adjustment unbilled: it has no
-- target_invoice_id and is left out of the drafts.

with

priced as (

    select * from {{ ref('int_invoice_lines_priced') }}

),

segments as (

    select * from {{ ref('int_subscriptions_split_by_month') }}

),

issued as (

    select * from {{ ref('stg_billing__invoices') }}

),

issued_lines as (

    select * from {{ ref('stg_billing__invoice_line_items') }}

),

events as (

    select * from {{ ref('stg_events__usage_events') }}

),

metrics as (

    select * from {{ ref('stg_catalog__metrics') }}

),

live_issued as (

    select
        invoice_id as issued_invoice_id,
        invoice_number,
        draft_id,
        subscription_id,
        period_start,
        period_end,
        issued_at
    from issued
    where is_live

),

late_events as (

    select
        live_issued.draft_id,
        metrics.metric_code,
        count(*) as late_event_count,
        case
            when min(metrics.aggregation) = 'count' then count(*)
            when min(metrics.aggregation) = 'sum'
                then coalesce(sum(cast(events.properties ->> metrics.property as numeric)), 0)
            else max(cast(events.properties ->> metrics.property as numeric))
        end as late_quantity
    from live_issued
    inner join events
        on events.subscription_id = live_issued.subscription_id
        and events.occurred_at >= live_issued.period_start::timestamp at time zone 'UTC'
        and events.occurred_at < live_issued.period_end::timestamp at time zone 'UTC'
        and events.loaded_at > live_issued.issued_at
    inner join metrics
        on metrics.event_type = events.event_type
    group by 1, 2

),

repriced as (

    select
        invoice_id as draft_id,
        kind,
        coalesce(metric_code, '') as metric_key,
        sum(quantity) as quantity,
        sum(amount) as amount
    from priced
    where kind in ('usage', 'overage', 'minimum_commit')
    group by 1, 2, 3

),

as_issued as (

    select
        live_issued.draft_id,
        issued_lines.kind,
        coalesce(issued_lines.metric_code, '') as metric_key,
        sum(issued_lines.quantity) as quantity,
        sum(issued_lines.amount) as amount
    from issued_lines
    inner join live_issued
        on live_issued.issued_invoice_id = issued_lines.invoice_id
    where issued_lines.kind in ('usage', 'overage', 'minimum_commit')
    group by 1, 2, 3

),

differences as (

    select
        coalesce(repriced.draft_id, as_issued.draft_id) as draft_id,
        coalesce(repriced.kind, as_issued.kind) as kind,
        coalesce(repriced.metric_key, as_issued.metric_key) as metric_key,
        coalesce(repriced.quantity, 0) - coalesce(as_issued.quantity, 0) as quantity,
        coalesce(repriced.amount, 0) - coalesce(as_issued.amount, 0) as amount
    from repriced
    full outer join as_issued
        on as_issued.draft_id = repriced.draft_id
        and as_issued.kind = repriced.kind
        and as_issued.metric_key = repriced.metric_key
    where coalesce(repriced.draft_id, as_issued.draft_id) in (select draft_id from late_events)

),

open_months as (

    select distinct
        segments.invoice_id,
        segments.subscription_id,
        segments.period_start
    from segments
    left join live_issued
        on live_issued.subscription_id = segments.subscription_id
        and live_issued.period_start = segments.period_start
    where live_issued.draft_id is null

),

targets as (

    -- the subscription's first month after the adjusted one that is not issued yet
    select distinct on (live_issued.draft_id)
        live_issued.draft_id,
        open_months.invoice_id as target_invoice_id
    from live_issued
    left join open_months
        on open_months.subscription_id = live_issued.subscription_id
        and open_months.period_start > live_issued.period_start
    where live_issued.draft_id in (select draft_id from late_events)
    order by live_issued.draft_id, open_months.period_start

),

final as (

    select
        targets.target_invoice_id as invoice_id,
        5 as kind_order,
        cast(null as timestamptz) as segment_started_at,
        'adjustment' as kind,
        nullif(differences.metric_key, '') as metric_code,
        'late usage for ' || to_char(live_issued.period_start, 'YYYY-MM') || ' (' || live_issued.invoice_number
        || '): ' || differences.kind || coalesce(' ' || nullif(differences.metric_key, ''), '')
        || coalesce(', ' || late_events.late_event_count || ' late events', '') as description,
        differences.quantity,
        -- the difference's price per unit (its average where tiers apply), to the 6 decimals
        -- unit prices keep; none when only the amount changed
        round(differences.amount / nullif(differences.quantity, 0), 6) as unit_price,
        differences.amount,
        live_issued.draft_id as adjusted_invoice_id,
        live_issued.issued_invoice_id,
        late_events.late_quantity
    from differences
    inner join live_issued
        on live_issued.draft_id = differences.draft_id
    inner join targets
        on targets.draft_id = differences.draft_id
    left join late_events
        on late_events.draft_id = differences.draft_id
        and late_events.metric_code = differences.metric_key
    where differences.amount <> 0 or differences.quantity <> 0

)

select * from final
