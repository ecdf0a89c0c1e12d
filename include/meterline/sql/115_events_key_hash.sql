-- raw.events' idempotency key kept unique through a fixed-size hash of it instead of a B-tree on
-- the text (issue 18). The B-tree held every key's text (1.2 GB at 30 days of a million events a
-- day), and a load touched most of its leaf pages: the loader fell from 0.74x raw COPY into an
-- empty table to 0.32x onto 30 days. A bigint per key makes the index about half the size, and
-- a lookup compares 8 bytes (bench/RESULTS.md, "Events onto history", for the options measured).
--
-- key_hash is computed by PostgreSQL from the key and key_salt (0 for nearly every event) and is
-- unique, so PostgreSQL itself refuses a second row with a known key, whoever writes it. A hash
-- match is not taken for a duplicate: the loader compares the texts (meterline.events.load), and
-- a distinct key whose hash collides with a key already seen is stored with the next free salt
-- (1, 2, ...), so a collision never drops an event. Looking a key up: its hash with salt 0; on a
-- match with another text, the hash with salt 1; and so on until a match with the same text
-- (known) or no match (new). raw.events is append-only, so these chains never break.
create or replace function raw.event_key_hash(key text, salt bigint) returns bigint
    language sql immutable strict parallel safe
    return hashtextextended(key, salt);

alter table raw.events
    add column if not exists key_salt int not null default 0,
    add column if not exists key_hash bigint generated always as (raw.event_key_hash(idempotency_key, key_salt)) stored;

-- Keys already loaded whose hashes collide (distinct texts, unique so far by the text index):
-- the later loaded takes the next salt, until the hashes are distinct. A hash a row leaves stays
-- held by the row that kept it, so every salted key's chain stays whole. Returns the moves (a
-- row may move more than once).
create or replace function raw.events_resalt_collisions() returns bigint
    language plpgsql
as $$
declare
    moved bigint := 0;
    n bigint;
begin
    loop
        update raw.events e set key_salt = e.key_salt + 1
        from (
            select ctid, row_number() over (partition by key_hash order by loaded_at, source_file, line_no) as n
            from raw.events
            where key_hash in (select key_hash from raw.events group by key_hash having count(*) > 1)
        ) later
        where e.ctid = later.ctid and later.n > 1;
        get diagnostics n = row_count;
        exit when n = 0;
        moved := moved + n;
    end loop;
    return moved;
end
$$;
select raw.events_resalt_collisions();

create unique index if not exists events_key_hash_uidx on raw.events (key_hash);
drop index if exists raw.events_idempotency_key_c_uidx;
