{#- Every AWS product code in the FOCUS export has its row in seeds/aws_services.csv (matched
    case-insensitively, as AWS writes `awskms` and `AWSKMS` for the same service): without one, the
    service is "Other". AWS Marketplace lines are exempt: their product code is a product id, their
    ServiceName the product's name (PublisherName is the seller). Returns the codes to add, with
    their cost. Reads focus_costs rather than staging, so it runs with the FOCUS models and seeds,
    never before the seeds are loaded. -#}
with

charges as (

    select * from {{ ref('focus_costs') }}
    {#- in a build, the periods it derived (macros/cost_periods.sql), unless it rebuilds the seed -#}
    {%- set scope = cost_periods_tested_condition_of('model.meterline.focus_costs', ['seed.meterline.aws_services']) %}
    {%- if scope %}
    where {{ scope }}
    {%- endif %}

),

services as (

    select * from {{ ref('aws_services') }}

)

select
    charges."x_ProductCode" as product_code,
    count(*) as line_count,
    sum(charges."BilledCost") as billed_cost
from charges
left join services
    on lower(charges."x_ProductCode") = lower(services.product_code)
where services.product_code is null
    and coalesce(charges."x_ProductCode", '') <> ''
    and charges."PublisherName" = 'AWS'
group by charges."x_ProductCode"
