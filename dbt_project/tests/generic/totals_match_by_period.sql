{#- A totals check across models (in the spirit of dbt-expectations'
    expect_table_aggregation_to_equal_other_table): per `period` (default month) of
    `period_column`, sum(`column`) in the model equals the row count of `compare_model` per the
    same period of `compare_period_column`. With `compare_arrived_column`, only rows that arrived
    by the model's newest `model_updated_column` count, so a load committed after the model was
    built is not a false alarm. Returns the periods that differ. -#}
{% test totals_match_by_period(model, column, period_column, compare_model, compare_period_column, compare_arrived_column=none, model_updated_column='updated_at', period='month') %}

with

ours as (

    select date_trunc('{{ period }}', {{ period_column }}) as period, sum({{ column }}) as total
    from {{ model }}
    group by 1

),

theirs as (

    select date_trunc('{{ period }}', {{ compare_period_column }}) as period, count(*) as total
    from {{ compare_model }}
    {% if compare_arrived_column -%}
    where {{ compare_arrived_column }} <= (select max({{ model_updated_column }}) from {{ model }})
    {%- endif %}
    group by 1

)

select
    coalesce(ours.period, theirs.period) as period,
    ours.total as model_total,
    theirs.total as compare_total
from ours
full outer join theirs
    on ours.period = theirs.period
where ours.total is distinct from theirs.total

{% endtest %}
