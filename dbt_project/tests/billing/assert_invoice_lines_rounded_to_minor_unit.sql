-- Every line amount is a whole number of the currency's minor unit (cents; whole yen).
select
    lines.invoice_id,
    lines.line_no,
    lines.amount,
    currencies.minor_units
from {{ ref('invoice_draft_lines') }} as lines
inner join {{ ref('currencies') }} as currencies
    on currencies.currency = lines.currency
where lines.amount <> round(lines.amount, currencies.minor_units)
