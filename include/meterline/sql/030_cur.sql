-- AWS Cost and Usage Report deliveries (meterline.cur). Every delivery of a billing period is a
-- complete restatement: the loader COPYs it into its own table and swaps that table in as the
-- period's partition in one transaction, so the previous delivery's rows vanish at once and other
-- periods are untouched. Known columns are typed; tags and unknown columns are jsonb.

-- The ledger: one row per delivery seen (superseded and failed deliveries are kept).
create table if not exists raw.cur_deliveries (
    delivery_id      bigint generated always as identity primary key,
    delivery_key     text        not null unique,  -- manifest path + assemblyId, CUR 2.0 execution, or partition + checksums
    format           text        not null check (format in ('legacy_csv', 'legacy_parquet', 'cur2_parquet', 'flat_csv')),
    report_name      text        not null,
    assembly_id      text,
    billing_period   date        not null,         -- first day of the month (UTC)
    manifest_path    text,
    files            jsonb       not null default '[]'::jsonb,  -- [{path, size, sha256}]
    checksum         text,                         -- sha256 over the files' checksums
    delivered_at     timestamptz,
    status           text        not null check (status in ('loading', 'loaded', 'failed')),
    error            text,
    row_count        bigint,
    unblended_cost   numeric,
    billed_cost      numeric,
    bill_invoice_id  text,                         -- set when AWS finalised the month
    is_final         boolean     not null default false,
    columns          text[],                       -- normalised column names of the files
    extra_columns    text[],                       -- columns not typed: kept in extras jsonb
    columns_added    text[],                       -- drift against the report's previous delivery
    columns_removed  text[],
    loaded_at        timestamptz,
    superseded_by    bigint references raw.cur_deliveries (delivery_id),
    superseded_at    timestamptz
);
create index if not exists cur_deliveries_period_idx on raw.cur_deliveries (billing_period, status);

-- The line items of the live delivery of each billing period: one list partition per period.
create table if not exists raw.cur_line_items (
    delivery_id                    bigint not null,
    billing_period                 date   not null,
    line_seq                       bigint not null,  -- row within the delivery, across its files
    source_file                    text   not null,
    source_line                    bigint not null,  -- line in a CSV file (header = 1), row in a Parquet file
    identity_line_item_id          text,
    identity_time_interval         text,
    bill_invoice_id                text,
    bill_invoicing_entity          text,
    bill_billing_entity            text,
    bill_bill_type                 text,
    bill_payer_account_id          text,
    bill_billing_period_start_date timestamptz,
    bill_billing_period_end_date   timestamptz,
    line_item_usage_account_id     text,
    line_item_line_item_type       text,
    line_item_usage_start_date     timestamptz,
    line_item_usage_end_date       timestamptz,
    line_item_product_code         text,
    line_item_usage_type           text,
    line_item_operation            text,
    line_item_availability_zone    text,
    line_item_resource_id          text,
    line_item_usage_amount         numeric,
    line_item_normalization_factor numeric,
    line_item_normalized_usage_amount numeric,
    line_item_currency_code        text,
    line_item_unblended_rate       numeric,
    line_item_unblended_cost       numeric,
    line_item_blended_rate         numeric,
    line_item_blended_cost         numeric,
    line_item_net_unblended_rate   numeric,
    line_item_net_unblended_cost   numeric,
    line_item_line_item_description text,
    line_item_tax_type             text,
    line_item_legal_entity         text,
    product_product_name           text,
    product_servicecode            text,
    product_region_code            text,
    product_product_family         text,
    product_instance_type          text,
    product_sku                    text,
    pricing_term                   text,
    pricing_unit                   text,
    pricing_public_on_demand_cost  numeric,
    pricing_public_on_demand_rate  numeric,
    reservation_reservation_a_r_n  text,
    reservation_effective_cost     numeric,
    reservation_net_effective_cost numeric,
    reservation_amortized_upfront_fee_for_billing_period numeric,
    reservation_amortized_upfront_cost_for_usage numeric,
    reservation_recurring_fee_for_usage numeric,
    reservation_unused_amortized_upfront_fee_for_billing_period numeric,
    reservation_unused_recurring_fee numeric,
    savings_plan_savings_plan_a_r_n text,
    savings_plan_savings_plan_rate  numeric,
    savings_plan_savings_plan_effective_cost numeric,
    savings_plan_net_savings_plan_effective_cost numeric,
    savings_plan_total_commitment_to_date numeric,
    savings_plan_used_commitment    numeric,
    savings_plan_amortized_upfront_commitment_for_billing_period numeric,
    savings_plan_recurring_commitment_for_billing_period numeric,
    tags                           jsonb not null default '{}'::jsonb,  -- normalised keys: user_tenant_id
    extras                         jsonb not null default '{}'::jsonb   -- columns not typed above
) partition by list (billing_period);
