{#- What differs between the two engines the heavy models build on (WAREHOUSE_ENGINE, docs/spark.md):
    PostgreSQL (dbt-postgres, the default) and Spark (dbt-spark over Thrift). The models are one
    set of files; these macros render each engine's SQL for the few constructs that differ. -#}

{#- The exact numeric type: `numeric` on PostgreSQL (unbounded, each value keeps its scale);
    decimal(38,18) on Spark (20 integer digits, 18 decimals), which holds every event quantity
    (validate.QUANTITY_MAX = 10**15) exactly. Spark's bare `numeric` is decimal(10,0) and dbt's
    type_numeric() numeric(28,6) / decimal(28,6): both would change values or their scale. -#}
{% macro exact_numeric() -%}
    {{ return(adapter.dispatch('exact_numeric')()) }}
{%- endmacro %}

{% macro default__exact_numeric() -%}numeric{%- endmacro %}

{% macro spark__exact_numeric() -%}decimal(38,18){%- endmacro %}


{#- A JSON property as an exact number, null when absent or not a JSON number. `json_column`
    is jsonb on PostgreSQL, the jsonb's text on Spark (spark/lake.py); `key` a SQL expression. -#}
{% macro json_number(json_column, key) -%}
    {{ return(adapter.dispatch('json_number')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_number(json_column, key) -%}
    case
        when jsonb_typeof({{ json_column }} -> {{ key }}) = 'number'
            then cast({{ json_column }} ->> {{ key }} as numeric)
    end
{%- endmacro %}

{#- Spark parses the text into a variant: PostgreSQL writes jsonb numbers in plain digits, so a
    number up to 38 digits is an exact integer or decimal variant. A longer one Spark could only
    hold as a double: the build fails rather than let a float in. (get_json_object is no
    alternative: it returns numbers through a double, 1.50 as 1.5 and 10**22 + 0.1 as 1.0E22.) -#}
{% macro spark__json_number(json_column, key) -%}
    {%- set value = "try_element_at(try_cast(parse_json(" ~ json_column ~ ") as map<string, variant>), " ~ key ~ ")" -%}
    case
        when schema_of_variant({{ value }}) rlike '^(TINYINT|SMALLINT|INT|BIGINT|DECIMAL)'
            then cast({{ value }} as decimal(38,18))
        when schema_of_variant({{ value }}) in ('DOUBLE', 'FLOAT')
            then raise_error(concat('a JSON number beyond 38 digits, which Spark holds only as a float: ', {{ key }}))
    end
{%- endmacro %}


{#- The partition column a Spark incremental model writes last (insert_overwrite replaces whole
    partitions); nothing on PostgreSQL, where the strategies replace rows by key. -#}
{% macro spark_partition_column(expression, name) -%}
    {{ return(adapter.dispatch('spark_partition_column')(expression, name)) }}
{%- endmacro %}

{% macro default__spark_partition_column(expression, name) -%}{%- endmacro %}

{% macro spark__spark_partition_column(expression, name) -%}
    , {{ expression }} as {{ name }}
{%- endmacro %}


{#- A JSON property as text (PostgreSQL's `->>`), null when absent or JSON null; `keys` is a list
    of SQL expressions, a path into nested objects (['product', 'region'] reads
    {"product": {"region": ...}}). Spark parses the jsonb's text as a variant and reads the path
    there, so a number comes back in the digits it was written with, never through a double. -#}
{% macro json_text(json_column, keys) -%}
    {{ return(adapter.dispatch('json_text')(json_column, keys)) }}
{%- endmacro %}

{% macro default__json_text(json_column, keys) -%}
    {{ json_column }}{% for key in keys %} {{ '->>' if loop.last else '->' }} {{ key }}{% endfor %}
{%- endmacro %}

{% macro spark__json_text(json_column, keys) -%}
    {%- set value = namespace(sql="parse_json(" ~ json_column ~ ")") -%}
    {%- for key in keys -%}
        {%- set value.sql = "try_element_at(try_cast(" ~ value.sql ~ " as map<string, variant>), " ~ key ~ ")" -%}
    {%- endfor -%}
    cast({{ value.sql }} as string)
{%- endmacro %}


{#- The UTC calendar day of a timestamptz. Spark's sessions run in UTC (spark/cluster.py), where
    a timestamp's date is its UTC day. -#}
{% macro utc_date(timestamp) -%}
    {{ return(adapter.dispatch('utc_date')(timestamp)) }}
{%- endmacro %}

{% macro default__utc_date(timestamp) -%}
    cast({{ timestamp }} at time zone 'UTC' as date)
{%- endmacro %}

{% macro spark__utc_date(timestamp) -%}
    cast({{ timestamp }} as date)
{%- endmacro %}
