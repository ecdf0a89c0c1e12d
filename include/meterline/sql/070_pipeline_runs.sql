-- One row per DAG run (task_id = '') and per task of it: its outcome and the counts the task
-- returned (files read, rows loaded, invoices issued …). Written by the Airflow listener plugin.
create table if not exists ops.pipeline_runs (
    dag_id              text not null,
    run_id              text not null,
    task_id             text not null default '',
    map_index           int  not null default -1,
    state               text not null,
    try_number          int,
    logical_date        timestamptz,
    data_interval_start timestamptz,
    data_interval_end   timestamptz,
    started_at          timestamptz,
    ended_at            timestamptz,
    counts              jsonb not null default '{}'::jsonb,
    error               text,
    recorded_at         timestamptz not null default now(),
    primary key (dag_id, run_id, task_id, map_index)
);
create index if not exists pipeline_runs_recent_idx on ops.pipeline_runs (dag_id, recorded_at desc);
