{#- The tenant tag key (var tenant_tag_key, from TENANT_TAG_KEY, as AWS writes it: `user:tenant_id`)
    normalised the way the CUR loader normalises tag keys in raw.cur_line_items.tags
    (meterline.cur.normalise.tag_key): lower case, runs of other characters to `_`. Returned as
    a quoted SQL literal. -#}
{% macro cur_tag_key() -%}
    {%- set key = modules.re.sub('[^a-z0-9]+', '_', (var('tenant_tag_key') | string | lower)).strip('_') -%}
    '{{ key }}'
{%- endmacro %}
