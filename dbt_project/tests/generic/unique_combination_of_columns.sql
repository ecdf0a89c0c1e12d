{#- A compound primary key: no two rows share the same values of `combination_of_columns`
    (in the spirit of dbt_utils.unique_combination_of_columns, which cannot be installed here). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as n_rows
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
