{#- The instant a run is "as of" (var as_of, ISO-8601; no zone means UTC), as a timestamptz
    literal. Everything time-relative reads it, never the wall clock, so re-running an interval
    gives the same tables whatever the day: the drafts' horizon (through the month of as_of),
    which subscriptions are running (quotas.active), the day budgets are measured on.

    Who sets it: the close passes its period's end; the DAGs their run's data interval end;
    `meterline dbt` the moment it is started, unless given --as-of. They set the environment
    variable METERLINE_AS_OF (meterline.transform.as_of_env); a `--vars '{as_of: ...}'` given by
    hand wins over it. The variable is read only when dbt executes, never while it parses: a
    parse that read it (or a var that changed) would make dbt re-parse the whole project for
    every new as-of. A model that needs it fails to compile without it, instead of silently
    reading today's date. -#}
{% macro as_of() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none and execute -%}
        {%- set value = env_var('METERLINE_AS_OF', '') or none -%}
    {%- endif -%}
    {%- if value is none -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "as_of is not set: this model is time-relative and reads the run's as-of instant, from "
                ~ "METERLINE_AS_OF or --vars '{as_of: \"2026-11-01T00:00:00Z\"}' "
                ~ "(meterline dbt sets it to now unless given --as-of)"
            ) }}
        {%- endif -%}
        cast(null as timestamptz)
    {%- else -%}
        {%- set text = (value | string) | trim -%}
        {%- set parsed = modules.datetime.datetime.fromisoformat(text.replace('Z', '+00:00')) -%}
        {%- if parsed.tzinfo is none -%}
            {%- set parsed = parsed.replace(tzinfo=modules.pytz.utc) -%}
        {%- endif -%}
        cast('{{ parsed.astimezone(modules.pytz.utc).isoformat() }}' as timestamptz)
    {%- endif -%}
{%- endmacro %}

{#- The UTC calendar day of as_of: the day budgets are measured on. -#}
{% macro as_of_date() -%}
    cast(({{ as_of() }}) at time zone 'UTC' as date)
{%- endmacro %}
