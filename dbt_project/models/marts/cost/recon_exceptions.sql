{#- Every reconciliation mismatch, one row each (DESIGN.md). A union of the
    int_recon_exceptions_* models, each with the columns recon_id, period_start, category, key,
    detail, amount: to add a check, write its model and add its name to this list. -#}
{%- set exception_models = [
    'int_recon_exceptions_allocation',
    'int_recon_exceptions_tagging',
    'int_recon_exceptions_usage',
    'int_recon_exceptions_invoice',
    'int_recon_exceptions_billing',
    'int_recon_exceptions_payment',
] -%}

with

unioned as (

    {% for name in exception_models -%}
    select recon_id, period_start, category, key, detail, amount from {{ ref(name) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select
    md5(recon_id || '|' || category || '|' || key) as exception_id,
    recon_id,
    period_start,
    category,
    key,
    detail,
    amount
from unioned
