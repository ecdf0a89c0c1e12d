-- Manual credits (billing.credit_grants, `meterline invoice credit`) on the drafts not issued
-- yet: what is left of each grant (granted - used by issued invoices) goes to the tenant's open
-- drafts in the grant's currency, in order (period, subscription), each draft taking at most its
-- pre-tax amount after the catalog credits, so no invoice goes negative and the rest carries
-- forward; grants are used oldest first. One row per draft and grant it uses.
--
-- Closed form of that greedy fill: drafts' room and grants' remainder laid end to end, each in
-- its order; draft i uses of grant j the overlap of [room before i, room through i) and
-- [remainder before j, remainder through j). Both are whole minor units (grants are rounded when
-- granted, lines when priced), so the overlaps are too.
-- A draft with a pricing configuration error cannot be issued and takes nothing.

with

drafts as (

    select * from {{ ref('int_invoices_configured') }}

),

catalog_credits as (

    select * from {{ ref('int_credits_applied_to_invoices') }}

),

issued as (

    select * from {{ ref('stg_billing__invoices') }}

),

grants as (

    select * from {{ ref('stg_billing__credit_grants') }}

),

applications as (

    select * from {{ ref('stg_billing__credit_applications') }}

),

open_drafts as (

    select
        drafts.invoice_id,
        drafts.tenant_id,
        drafts.currency,
        drafts.period_start,
        drafts.subscription_id,
        greatest(catalog_credits.subtotal - catalog_credits.credits_applied, 0) as room
    from drafts
    inner join catalog_credits
        on catalog_credits.invoice_id = drafts.invoice_id
    where not drafts.has_pricing_error
        and not exists (
            select 1
            from issued
            where issued.is_live
                and issued.subscription_id = drafts.subscription_id
                and issued.period_start = drafts.period_start
        )

),

rooms as (

    select
        *,
        sum(room) over running - room as room_before,
        sum(room) over running as room_through
    from open_drafts
    window running as (
        partition by tenant_id, currency
        order by period_start, subscription_id
        rows between unbounded preceding and current row
    )

),

remaining as (

    select
        grants.grant_id,
        grants.tenant_id,
        grants.currency,
        grants.reason,
        grants.created_at,
        grants.amount - coalesce(sum(applications.amount), 0) as remaining
    from grants
    left join applications
        on applications.grant_id = grants.grant_id
    group by 1, 2, 3, 4, 5, grants.amount

),

pool as (

    select
        *,
        sum(remaining) over running - remaining as pool_before,
        sum(remaining) over running as pool_through
    from remaining
    where remaining > 0
    window running as (
        partition by tenant_id, currency
        order by created_at, grant_id
        rows between unbounded preceding and current row
    )

),

final as (

    select
        rooms.invoice_id,
        pool.grant_id,
        pool.reason,
        pool.created_at as granted_at,
        least(rooms.room_through, pool.pool_through) - greatest(rooms.room_before, pool.pool_before) as amount
    from rooms
    inner join pool
        on pool.tenant_id = rooms.tenant_id
        and pool.currency = rooms.currency
        and pool.pool_before < rooms.room_through
        and rooms.room_before < pool.pool_through

)

select * from final
