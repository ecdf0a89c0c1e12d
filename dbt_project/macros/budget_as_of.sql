{#- The day budgets are measured on: var budget_as_of (YYYY-MM-DD) when given, else today (UTC). -#}
{% macro budget_as_of() -%}
    {%- if var('budget_as_of', none) -%} date '{{ var("budget_as_of") }}' {%- else -%} current_date {%- endif -%}
{%- endmacro %}
