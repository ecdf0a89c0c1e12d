{#- Every AWS pricing unit in the FOCUS export has its FOCUS unit in seeds/aws_pricing_units.csv
    (matched case-insensitively): an unmapped unit reaches PricingUnit as AWS wrote it, which the
    FOCUS unit format may refuse (`Hrs`, `GB-Mo`). Returns the units to add. -#}
with

charges as (

    select * from {{ ref('focus_costs') }}
    {#- in a build, the periods it derived (macros/cost_periods.sql), unless it rebuilds the seed -#}
    {%- set scope = cost_periods_tested_condition_of('model.meterline.focus_costs', ['seed.meterline.aws_pricing_units']) %}
    {%- if scope %}
    where {{ scope }}
    {%- endif %}

),

pricing_units as (

    select * from {{ ref('aws_pricing_units') }}

)

select
    charges."x_AwsPricingUnit" as aws_unit,
    count(*) as line_count
from charges
left join pricing_units
    on lower(charges."x_AwsPricingUnit") = lower(pricing_units.aws_unit)
where pricing_units.aws_unit is null
    and charges."x_AwsPricingUnit" is not null
group by charges."x_AwsPricingUnit"
