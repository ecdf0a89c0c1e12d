{#- Every row satisfies a SQL boolean `expression` (optionally only rows matching `where`),
    like dbt_utils.expression_is_true: business rules as tests beside the model. -#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not coalesce(({{ expression }}), false)

{% endtest %}
