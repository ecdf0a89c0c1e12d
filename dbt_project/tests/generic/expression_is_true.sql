{#- Every row satisfies a SQL boolean `expression` (optionally only rows matching `where`),
    like dbt_utils.expression_is_true: business rules as tests beside the model (at model or
    column level; the column only names the test). -#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not coalesce(({{ expression }}), false)

{% endtest %}
