{#- Every AWS pricing unit in the FOCUS export has its FOCUS unit in seeds/aws_pricing_units.csv
    (matched case-insensitively): an unmapped unit reaches PricingUnit as AWS wrote it, which the
    FOCUS unit format may refuse (`Hrs`, `GB-Mo`). Returns the units to add. -#}
with

charges as (

    select * from {{ ref('focus_costs') }}

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
