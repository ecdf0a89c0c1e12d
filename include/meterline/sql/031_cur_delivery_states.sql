-- CUR deliveries that are seen but not loaded are recorded too, with the reason (issue 14):
-- `waiting` (AWS is still writing the report, or a partition's file set has not settled) and
-- `skipped` (another delivery of the period is current, or a final month would be replaced by a
-- non-final one). `delivery_group` is the report folder of one period: its deliveries restate
-- each other. Drift is measured against the previous delivery of the same period (`drift_basis`
-- says which delivery, or why another), tag keys included; `currencies` lists the line currencies.
alter table raw.cur_deliveries drop constraint if exists cur_deliveries_status_check;
alter table raw.cur_deliveries add constraint cur_deliveries_status_check
    check (status in ('loading', 'loaded', 'failed', 'waiting', 'skipped'));
alter table raw.cur_deliveries
    add column if not exists delivery_group   text,
    add column if not exists drift_basis      text,
    add column if not exists drift_against    bigint references raw.cur_deliveries (delivery_id),
    add column if not exists tag_keys         text[],
    add column if not exists tag_keys_added   text[],
    add column if not exists tag_keys_removed text[],
    add column if not exists currencies       text[];
