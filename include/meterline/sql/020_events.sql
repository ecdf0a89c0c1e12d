-- Usage events: accepted events, quarantined rows, and the ledger of files read.
-- Written only by meterline.events.load, one transaction per day partition.

-- One accepted event. idempotency_key is unique: the first file (and line) that brought a key
-- wins, whichever day it came in. Append-only: a late event is kept, never updated.
create table if not exists raw.events (
    event_id        uuid        not null,
    idempotency_key text        not null,
    subscription_id uuid        not null,
    event_type      text        not null,
    properties      jsonb       not null default '{}'::jsonb,
    "timestamp"     timestamptz not null,
    signature       text,
    source_file     text        not null,
    line_no         int         not null,      -- 1-based line (JSON Lines) or row (Parquet)
    partition_date  date        not null,      -- the day partition the file was found under
    loaded_at       timestamptz not null default now()
);
create unique index if not exists events_idempotency_key_uidx on raw.events (idempotency_key);
-- dbt re-aggregates the hours touched by recent loads: it finds them by loaded_at, then reads
-- them by timestamp. BRIN, not B-tree: rows arrive in loaded_at order and, within a partition,
-- mostly in time order, so block ranges are tight, and a BRIN costs next to nothing to keep up
-- while a load COPYs a million rows (the unique key is the one B-tree a load must maintain).
create index if not exists events_timestamp_brin on raw.events using brin ("timestamp");
create index if not exists events_loaded_at_brin on raw.events using brin (loaded_at);

-- A row that failed validation: where it was, why, and the record as found (text, since a
-- malformed line is not JSON).
create table if not exists raw.events_rejected (
    rejected_id     bigint generated always as identity primary key,
    source_file     text        not null,
    checksum        text        not null,
    line_no         int         not null,
    reason          text        not null,
    raw_record      text        not null,
    idempotency_key text,
    "timestamp"     timestamptz,
    partition_date  date        not null,
    rejected_at     timestamptz not null default now()
);
create index if not exists events_rejected_partition_idx on raw.events_rejected (partition_date, reason);

-- Every file read, by path and content: a file with the same path and checksum is skipped;
-- a changed file (new checksum) is read again and its already-seen events count as duplicates.
create table if not exists raw.ingested_files (
    source_file    text        not null,
    checksum       text        not null,
    feed           text        not null default 'events',
    partition_date date        not null,
    file_format    text        not null,
    size_bytes     bigint      not null,
    rows_read      int         not null,
    rows_loaded    int         not null,
    duplicates     int         not null,
    rejected       int         not null,
    loaded_at      timestamptz not null default now(),
    primary key (source_file, checksum)
);
create index if not exists ingested_files_partition_idx on raw.ingested_files (feed, partition_date);
