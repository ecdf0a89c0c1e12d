{#- Every AWS pricing unit of a loaded CUR line has its FOCUS unit in seeds/aws_pricing_units.csv
    (matched case-insensitively): an unmapped unit reaches the FOCUS PricingUnit as AWS wrote it,
    which the FOCUS unit format may refuse (`Hrs`, `GB-Mo`). Returns the units to add. -#}
with

line_items as (

    select * from {{ ref('stg_cur__line_items') }}

),

pricing_units as (

    select * from {{ ref('aws_pricing_units') }}

)

select
    line_items.pricing_unit,
    count(*) as line_count
from line_items
left join pricing_units
    on lower(trim(line_items.pricing_unit)) = lower(pricing_units.aws_unit)
where pricing_units.aws_unit is null
    and nullif(trim(line_items.pricing_unit), '') is not null
group by line_items.pricing_unit
