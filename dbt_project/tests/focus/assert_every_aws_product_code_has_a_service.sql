{#- Every AWS product code of a loaded CUR line has its row in seeds/aws_services.csv (matched
    case-insensitively, as AWS writes `awskms` and `AWSKMS` for the same service): without one, the
    FOCUS views call the service "Other". AWS Marketplace lines are exempt: their product code is
    a product id, their ServiceName the product's name. Returns the codes to add, with their cost. -#}
with

line_items as (

    select * from {{ ref('stg_cur__line_items') }}

),

services as (

    select * from {{ ref('aws_services') }}

)

select
    line_items.line_item_product_code,
    count(*) as line_count,
    sum(coalesce(line_items.line_item_unblended_cost, 0)) as unblended_cost
from line_items
left join services
    on lower(line_items.line_item_product_code) = lower(services.product_code)
where services.product_code is null
    and coalesce(line_items.line_item_product_code, '') <> ''
    and coalesce(line_items.bill_billing_entity, '') <> 'AWS Marketplace'
group by line_items.line_item_product_code
