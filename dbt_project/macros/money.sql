{#- Money is numeric, never float: cast a cost or amount column, keeping its scale. -#}
{% macro money(column) -%}
    {{ return(adapter.dispatch('money')(column)) }}
{%- endmacro %}

{% macro default__money(column) -%}
    cast({{ column }} as {{ exact_numeric() }})
{%- endmacro %}

{#- Spark (WAREHOUSE_ENGINE=spark): the lake carries numerics as PostgreSQL's exact text
    (spark/lake.py); a value with more decimals than decimal(38,18) keeps (after its last non-zero
    digit) fails the build rather than be rounded. -#}
{% macro spark__money(column) -%}
    case
        when length(regexp_extract(cast({{ column }} as string), '[.]([0-9]*[1-9])', 1)) > 18
            then raise_error(concat('a money value with more than 18 decimals: ', cast({{ column }} as string)))
        else cast({{ column }} as {{ exact_numeric() }})
    end
{%- endmacro %}

{#- Round half-up to a currency's minor unit (numeric round() rounds half away from zero,
    which for the non-negative amounts we round is half-up). -#}
{% macro round_money(amount, minor_units) -%}
    round(cast({{ amount }} as numeric), {{ minor_units }})
{%- endmacro %}
