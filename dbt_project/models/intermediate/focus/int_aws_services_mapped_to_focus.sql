{#- AWS product code -> FOCUS 1.2 ServiceName, ServiceCategory and ServiceSubcategory (allowed
    values of the spec) and the ResourceType of its resources. A product code not listed here is
    ServiceCategory 'Other' in the FOCUS models; add a row when a new service appears. -#}
with

services (product_code, service_name, service_category, service_subcategory, resource_type) as (

    values
        ('AmazonEC2', 'Amazon Elastic Compute Cloud', 'Compute', 'Virtual Machines', 'Instance'),
        ('AWSLambda', 'AWS Lambda', 'Compute', 'Serverless Compute', 'Function'),
        ('AmazonECS', 'Amazon Elastic Container Service', 'Compute', 'Containers', 'Cluster'),
        ('AmazonEKS', 'Amazon Elastic Kubernetes Service', 'Compute', 'Containers', 'Cluster'),
        ('AmazonS3', 'Amazon Simple Storage Service', 'Storage', 'Object Storage', 'Bucket'),
        ('AmazonEFS', 'Amazon Elastic File System', 'Storage', 'File Storage', 'File System'),
        ('AmazonRDS', 'Amazon Relational Database Service', 'Databases', 'Relational Databases', 'DB Instance'),
        ('AmazonDynamoDB', 'Amazon DynamoDB', 'Databases', 'NoSQL Databases', 'Table'),
        ('AmazonElastiCache', 'Amazon ElastiCache', 'Databases', 'Caching', 'Cache Cluster'),
        ('AmazonRedshift', 'Amazon Redshift', 'Databases', 'Data Warehouses', 'Cluster'),
        ('AmazonCloudWatch', 'AmazonCloudWatch', 'Management and Governance', 'Observability', 'Metric'),
        ('AmazonSageMaker', 'Amazon SageMaker', 'AI and Machine Learning', 'Machine Learning', 'Endpoint'),
        ('AmazonCloudFront', 'Amazon CloudFront', 'Networking', 'Content Delivery', 'Distribution'),
        ('AmazonVPC', 'Amazon Virtual Private Cloud', 'Networking', 'Network Infrastructure', 'VPC'),
        ('AWSDataTransfer', 'AWS Data Transfer', 'Networking', 'Network Connectivity', 'Data Transfer'),
        ('AWSSupportBusiness', 'AWS Support (Business)', 'Management and Governance', 'Support', 'Support Plan'),
        ('AWSKMS', 'AWS Key Management Service', 'Security', 'Secret Management', 'Key')

)

select * from services
