{#- A quantity as a reader writes it in a line's description: thousands separated by commas,
    decimals only where it has them (1500000 -> 1,500,000; 2.5 -> 2.5). The separators are
    literal, not the locale's (G/D follow lc_numeric, which is empty in the C locale). Quantities
    stay below 10^20 (invoice_drafts' plausibility bound), inside the pattern. -#}
{% macro quantity_text(quantity) -%}
    rtrim(to_char({{ quantity }}, 'FM999,999,999,999,999,999,990.999999'), '.')
{%- endmacro %}
