-- The unique key of raw.events compared byte by byte (collation "C") instead of through the
-- database's libc collation (C.UTF-8): a load maintains this B-tree for every row it COPYs and
-- probes it for every key it brings, and a libc comparison (strcoll on copied strings) costs
-- several times a memcmp. Same equality (both deterministic: equal means the same bytes) and, as
-- C.UTF-8 orders by code point, the same order. An index, not a column collation: the column
-- keeps its type, so dbt's views over raw.events stay as they are. Queries that look a key up
-- say `idempotency_key collate "C"` to use it (meterline.events.load does).
create unique index if not exists events_idempotency_key_c_uidx on raw.events (idempotency_key collate "C");
drop index if exists raw.events_idempotency_key_uidx;
