{#- Models land in the schema their folder names (staging, intermediate, marts), not in
    "<target>_<folder>": the runbooks query unqualified names under a fixed search_path. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
