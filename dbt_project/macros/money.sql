{#- Money is numeric, never float: cast a cost or amount column, keeping its scale. -#}
{% macro money(column) -%}
    cast({{ column }} as {{ exact_numeric() }})
{%- endmacro %}

{#- Round half-up to a currency's minor unit (numeric round() rounds half away from zero,
    which for the non-negative amounts we round is half-up). -#}
{% macro round_money(amount, minor_units) -%}
    round(cast({{ amount }} as numeric), {{ minor_units }})
{%- endmacro %}
