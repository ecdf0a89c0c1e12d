-- Every draft's lines sum exactly to its header: the non-credit lines to draft_subtotal, the
-- credit lines to -draft_credits (DESIGN.md: total = subtotal - credits + tax, exactly the
-- rounded lines). Returns the drafts that disagree.
with

lines as (

    select
        invoice_id,
        sum(amount) filter (where kind <> 'credit') as line_subtotal,
        -sum(amount) filter (where kind = 'credit') as line_credits
    from {{ ref('invoice_draft_lines') }}
    group by 1

),

headers as (

    select * from {{ ref('invoice_header') }}

)

select
    headers.invoice_id,
    headers.draft_subtotal,
    lines.line_subtotal,
    headers.draft_credits,
    lines.line_credits
from headers
left join lines
    on lines.invoice_id = headers.invoice_id
where headers.draft_subtotal <> coalesce(lines.line_subtotal, 0)
    or headers.draft_credits <> coalesce(lines.line_credits, 0)
