"""A deterministic landing zone of usage-event dumps, with controlled noise and its ground truth.

`generate(landing_url, start, days, events_per_day=...)` reads the catalog's subscriptions and
metrics from `LANDING_URL/catalog/` (written by `meterline generate catalog`), then writes, per
day, `files_per_day` files under `events/year=YYYY/month=MM/day=DD/`, alternating Parquet and
gzipped JSON Lines. The same seed gives the same bytes.

Realism: event types weighted (api.request most, storage.snapshot least), a diurnal load curve
peaking mid-afternoon UTC, a few heavy tenants that send most of the traffic, lognormal
`duration_ms`, `tokens` on llm.completion and `bytes` on storage.*.

Noise, counted per day in the manifest: duplicates within a file, across files and across days
(exact re-deliveries of an earlier event), late events (timestamps 1-4 days before their
partition: valid, kept), and invalid rows — malformed JSON lines, missing fields, unparsable
timestamps, unknown event types and subscriptions, negative quantities, future timestamps, and
bad signatures (only when a signing key is given).

The manifest (`_generator/events/manifest-<start>-<end>.json`) and the ground truth
(`truth-<start>-<end>.parquet`: accepted distinct events per subscription, event type and UTC
hour, with their count and token total) are what tests compare the warehouse against.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meterline.events import GENERATOR_PREFIX, partition_prefix
from meterline.events.signing import sign
from meterline.landing import Zone

CATALOG_MISSING = "run meterline generate catalog first"
# Relative traffic per event type; a type the catalog has but this table lacks weighs 1.
TYPE_WEIGHTS = {"api.request": 10, "llm.completion": 5, "compute.job": 2, "storage.write": 2, "storage.snapshot": 1}
HEAVY_TENANT_WEIGHT = 25
# Invalid kinds: what the loader must quarantine, with the reason it must give.
INVALID_KINDS = {
    "malformed_json": "malformed_json",
    "missing_field": "missing_field:subscription_id",
    "invalid_timestamp": "invalid_timestamp",
    "unknown_event_type": "unknown_event_type",
    "unknown_subscription": "unknown_subscription",
    "negative_quantity": "negative_quantity",
    "future_timestamp": "future_timestamp",
    "bad_signature": "bad_signature",
}
JSONL_ONLY = {"malformed_json", "invalid_timestamp"}  # Parquet's typed columns cannot hold them
DUPLICATE_KINDS = ("duplicate_within_file", "duplicate_across_files", "duplicate_across_days")
US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("idempotency_key", pa.string()),
        ("subscription_id", pa.string()),
        ("event_type", pa.string()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("properties", pa.string()),  # the JSON object, as text
        ("signature", pa.string()),
    ]
)


class CatalogMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    tenant_id: str
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class Metric:
    metric_code: str
    event_type: str
    aggregation: str
    property: str | None


@dataclass
class Noise:
    """Noise per day, as a fraction of `events_per_day` (at least one row of each kind when > 0)."""

    duplicate_rate: float = 0.002
    late_rate: float = 0.002
    invalid_rate: float = 0.0005

    def count(self, rate: float, n: int) -> int:
        return 0 if rate <= 0 else max(1, round(rate * n))


@dataclass
class Generated:
    files: list[str]
    manifest: dict[str, Any]
    truth: pa.Table = field(repr=False)


def _parse_ts(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def read_catalog(zone: Zone) -> tuple[list[Subscription], list[Metric]]:
    """The subscriptions and metrics the catalog generator wrote (docs/catalog.md)."""
    if not (zone.exists("catalog/subscriptions.csv") and zone.exists("catalog/metrics.csv")):
        raise CatalogMissingError(f"no catalog/subscriptions.csv and metrics.csv under {zone.url}: {CATALOG_MISSING}")
    subs = [
        Subscription(r["subscription_id"].lower(), r["tenant_id"], _parse_ts(r["started_at"]), _parse_ts(r["ended_at"]))
        for r in csv.DictReader(io.StringIO(zone.read_bytes("catalog/subscriptions.csv").decode()))
    ]
    metrics = [
        Metric(r["metric_code"], r["event_type"], r["aggregation"], r.get("property") or None)
        for r in csv.DictReader(io.StringIO(zone.read_bytes("catalog/metrics.csv").decode()))
    ]
    if not subs or not metrics:
        raise CatalogMissingError(f"the catalog under {zone.url} has no subscriptions or metrics: {CATALOG_MISSING}")
    return subs, metrics


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.tobytes().hex()
    return [f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
            for i in range(0, 32 * n, 32)]  # fmt: skip


def _keys(rng: np.random.Generator, n: int) -> list[str]:
    h = rng.integers(0, 256, size=(n, 10), dtype=np.uint8).tobytes().hex()
    return [f"ik-{h[i : i + 20]}" for i in range(0, 20 * n, 20)]


def _properties(rng: np.random.Generator, types: np.ndarray) -> tuple[list[str], np.ndarray]:
    """JSON text per event and the tokens of each (0 when the type carries none)."""
    n = len(types)
    duration = np.maximum(1, rng.lognormal(mean=5.0, sigma=1.0, size=n)).astype(np.int64)
    tokens = np.where(types == "llm.completion", rng.integers(20, 4000, size=n), 0)
    nbytes = rng.integers(1_000, 50_000_000, size=n)
    out = []
    for t, d, k, b in zip(types.tolist(), duration.tolist(), tokens.tolist(), nbytes.tolist(), strict=True):
        if t == "llm.completion":
            out.append(f'{{"duration_ms":{d},"model":"m-{k % 3}","tokens":{k}}}')
        elif t.startswith("storage."):
            out.append(f'{{"bytes":{b},"duration_ms":{d}}}')
        else:
            out.append(f'{{"duration_ms":{d}}}')
    return out, tokens


def _active(subs: list[Subscription], day: date) -> list[str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    active = {s.subscription_id for s in subs if s.started_at < end and (s.ended_at is None or s.ended_at > start)}
    return sorted(active) or sorted({s.subscription_id for s in subs})


def _sub_weights(subs: list[Subscription], ids: list[str]) -> np.ndarray:
    tenant_of = {s.subscription_id: s.tenant_id for s in subs}
    tenants = sorted(set(tenant_of.values()))
    heavy = set(tenants[: max(1, len(tenants) // 10)])
    w = np.array([HEAVY_TENANT_WEIGHT if tenant_of[i] in heavy else 1 for i in ids], dtype=float)
    return w / w.sum()


def _hour_weights() -> np.ndarray:
    h = np.arange(24)
    w = 1.3 + np.cos(2 * np.pi * (h - 14) / 24)  # peak 14:00 UTC, trough 02:00
    return w / w.sum()


def _table(rows: dict[str, list], ts_us: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array(rows["event_id"], pa.string()),
            "idempotency_key": pa.array(rows["idempotency_key"], pa.string()),
            "subscription_id": pa.array(rows["subscription_id"], pa.string()),
            "event_type": pa.array(rows["event_type"], pa.string()),
            "timestamp": pa.array(ts_us // 1000, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "properties": pa.array(rows["properties"], pa.string()),
            "signature": pa.array(rows.get("signature") or [None] * len(ts_us), pa.string()),
        }
    )


def _sign_all(table: pa.Table, key: str) -> pa.Table:
    signatures = [
        sign({**row, "properties": json.loads(row["properties"])}, key)
        for row in table.drop_columns(["signature"]).to_pylist()
    ]
    return table.set_column(table.schema.get_field_index("signature"), "signature", pa.array(signatures, pa.string()))


def _jsonl(table: pa.Table, raw_lines: list[str | None]) -> bytes:
    """JSON Lines: one event per line; `raw_lines[i]`, when set, replaces row i verbatim."""
    ts = pc.strftime(table["timestamp"], format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    cols = [table[c].to_pylist() for c in ("event_id", "idempotency_key", "subscription_id", "event_type")]
    props, sigs = table["properties"].to_pylist(), table["signature"].to_pylist()
    d = json.dumps
    lines = []
    for i, raw in enumerate(raw_lines):
        if raw is not None:
            lines.append(raw)
            continue
        lines.append(
            f'{{"event_id":{d(cols[0][i])},"idempotency_key":{d(cols[1][i])},"subscription_id":{d(cols[2][i])},'
            f'"event_type":{d(cols[3][i])},"timestamp":{d(ts[i])},"properties":{props[i]},"signature":{d(sigs[i])}}}'
        )
    return ("\n".join(lines) + "\n").encode()


FORMATS = ("parquet", "jsonl.gz")


def generate(
    landing_url: str,
    start: date,
    days: int,
    *,
    events_per_day: int = 10_000,
    files_per_day: int = 4,
    seed: int = 42,
    noise: Noise | None = None,
    signing_key: str | None = None,
    now: datetime | None = None,
    formats: tuple[str, ...] = FORMATS,
) -> Generated:
    """Write `days` day partitions from `start`; returns the files, the manifest and the truth.

    File i of a day has format `formats[i % len(formats)]` ("parquet", "jsonl.gz" or "jsonl").
    """
    zone = Zone(landing_url)
    subs, metrics = read_catalog(zone)
    noise = noise or Noise()
    now = now or datetime.now(UTC)
    event_types = sorted({m.event_type for m in metrics})
    type_p = np.array([TYPE_WEIGHTS.get(t, 1) for t in event_types], dtype=float)
    type_p /= type_p.sum()
    hour_p = _hour_weights()
    all_subs = sorted({s.subscription_id for s in subs})
    written: list[str] = []
    per_day: dict[str, dict[str, int]] = {}
    truth_parts: list[pa.Table] = []
    previous: pa.Table | None = None

    for offset in range(days):
        day = start + timedelta(days=offset)
        rng = np.random.default_rng([seed, day.toordinal()])
        day_us = int((datetime(day.year, day.month, day.day, tzinfo=UTC) - EPOCH).total_seconds()) * 1_000_000
        n_late = noise.count(noise.late_rate, events_per_day)
        n = events_per_day + n_late
        active = _active(subs, day)
        sub_ids = np.array(active)[rng.choice(len(active), size=n, p=_sub_weights(subs, active))]
        types = np.array(event_types)[rng.choice(len(event_types), size=n, p=type_p)]
        ts_us = day_us + rng.choice(24, size=n, p=hour_p) * US_PER_HOUR + rng.integers(0, 3_600_000, size=n) * 1000
        # The last n_late events are late: 1-4 days before their partition.
        ts_us[events_per_day:] -= rng.integers(1, 5, size=n_late) * US_PER_DAY
        props, tokens = _properties(rng, types)
        good = _table(
            {
                "event_id": _uuids(rng, n),
                "idempotency_key": _keys(rng, n),
                "subscription_id": sub_ids.tolist(),
                "event_type": types.tolist(),
                "properties": props,
            },
            ts_us,
        )
        if signing_key:
            good = _sign_all(good, signing_key)
        truth_parts.append(
            pa.table(
                {
                    "subscription_id": good["subscription_id"],
                    "event_type": good["event_type"],
                    "hour": pc.floor_temporal(good["timestamp"], unit="hour").cast(pa.timestamp("us", tz="UTC")),
                    "tokens": pa.array(tokens, pa.int64()),
                }
            )
        )
        file_of = rng.integers(0, files_per_day, size=n)
        jsonl_files = [i for i in range(files_per_day) if formats[i % len(formats)] != "parquet"]
        counts = {"events": events_per_day, "late": n_late}

        # Duplicates: exact re-deliveries of an earlier good event.
        extra_rows: list[tuple[int, dict, str | None]] = []  # (file, row, raw line)
        n_dup = noise.count(noise.duplicate_rate, events_per_day)
        for kind in DUPLICATE_KINDS:
            source = previous if kind == "duplicate_across_days" else good
            if source is None or (kind == "duplicate_across_files" and files_per_day < 2):
                counts[kind] = 0
                continue
            picks = rng.choice(source.num_rows, size=n_dup, replace=False)
            for pick in picks.tolist():
                row = source.slice(pick, 1).to_pylist()[0]
                home = int(file_of[pick]) if kind == "duplicate_within_file" else int(rng.integers(0, files_per_day))
                if kind == "duplicate_across_files":
                    home = (int(file_of[pick]) + 1 + int(rng.integers(0, files_per_day - 1))) % files_per_day
                extra_rows.append((home, row, None))
            counts[kind] = n_dup

        # Invalid rows: a fresh valid event, then broken in one way.
        n_bad = noise.count(noise.invalid_rate, events_per_day)
        for kind in INVALID_KINDS:
            if (kind == "bad_signature" and not signing_key) or (kind in JSONL_ONLY and not jsonl_files):
                counts[kind] = 0
                continue
            for _ in range(n_bad):
                row = good.slice(int(rng.integers(0, events_per_day)), 1).to_pylist()[0]
                row["event_id"] = _uuids(rng, 1)[0]
                row["idempotency_key"] = _keys(rng, 1)[0]
                raw = None
                if kind == "missing_field":
                    row["subscription_id"] = None
                elif kind == "unknown_event_type":
                    row["event_type"] = "video.render"
                elif kind == "unknown_subscription":
                    row["subscription_id"] = _uuids(rng, 1)[0]
                elif kind == "negative_quantity":
                    p = json.loads(row["properties"])
                    p["tokens" if "tokens" in p else "duration_ms"] = -int(rng.integers(1, 500))
                    row["properties"] = json.dumps(p, sort_keys=True, separators=(",", ":"))
                elif kind == "future_timestamp":
                    row["timestamp"] = now + timedelta(days=int(rng.integers(1, 4)))
                elif kind == "invalid_timestamp":
                    raw = json.dumps(
                        {**row, "timestamp": "yesterday at noon", "properties": json.loads(row["properties"])}
                    )
                elif kind == "malformed_json":
                    raw = '{"event_id": "' + row["event_id"] + '", "idempotency_key": "' + row["idempotency_key"] + '",'
                if signing_key and kind != "bad_signature" and raw is None:
                    row["signature"] = sign({**row, "properties": json.loads(row["properties"])}, signing_key)
                if kind == "bad_signature":
                    row["signature"] = row["signature"][:-1] + ("0" if row["signature"][-1] != "0" else "1")
                target = jsonl_files if kind in JSONL_ONLY else list(range(files_per_day))
                extra_rows.append((target[int(rng.integers(0, len(target)))], row, raw))
            counts[kind] = n_bad

        prefix = partition_prefix(day)
        lines_per_file = []
        for index in range(files_per_day):
            part = good.filter(pa.array(file_of == index))
            extras = [(row, raw) for home, row, raw in extra_rows if home == index]
            if extras:
                extra_table = pa.Table.from_pylist([r for r, _ in extras], schema=EVENT_SCHEMA)
                part = pa.concat_tables([part, extra_table])
            raw_lines = [None] * (part.num_rows - len(extras)) + [raw for _, raw in extras]
            # Dumps are in time order, as the metering service writes them; a stable sort keeps
            # an original ahead of its re-delivery within the file.
            order = pc.sort_indices(part, sort_keys=[("timestamp", "ascending")])
            part = part.take(order)
            raw_lines = [raw_lines[i] for i in order.to_pylist()]
            fmt = formats[index % len(formats)]
            rel = f"{prefix}/events-{day:%Y%m%d}-{index:03d}.{fmt}"
            if fmt == "parquet":
                if any(raw is not None for raw in raw_lines):
                    raise AssertionError("JSON-only noise placed in a Parquet file")
                sink = io.BytesIO()
                pq.write_table(part, sink, compression="zstd")
                data = sink.getvalue()
            elif fmt == "jsonl":
                data = _jsonl(part, raw_lines)
            else:
                data = gzip.compress(_jsonl(part, raw_lines), compresslevel=1, mtime=0)
            written.append(zone.write_bytes(rel, data))
            lines_per_file.append(part.num_rows)
        counts["lines"] = sum(lines_per_file)
        counts["files"] = files_per_day
        counts["rejected"] = sum(counts[k] for k in INVALID_KINDS)
        counts["duplicates"] = sum(counts[k] for k in DUPLICATE_KINDS)
        per_day[day.isoformat()] = counts
        previous = good

    truth = (
        pa.concat_tables(truth_parts)
        .group_by(["subscription_id", "event_type", "hour"])
        .aggregate([("tokens", "count"), ("tokens", "sum")])
        .rename_columns(["subscription_id", "event_type", "hour", "event_count", "total_tokens"])
        .sort_by([("subscription_id", "ascending"), ("event_type", "ascending"), ("hour", "ascending")])
    )
    end = start + timedelta(days=days - 1)
    manifest = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "seed": seed,
        "events_per_day": events_per_day,
        "files_per_day": files_per_day,
        "signed": bool(signing_key),
        "subscriptions": len(all_subs),
        "event_types": event_types,
        "reasons": {k: v for k, v in INVALID_KINDS.items()},
        "days": per_day,
        "totals": {k: sum(d[k] for d in per_day.values()) for k in next(iter(per_day.values()))},
        "accepted_distinct_events": int(pc.sum(truth["event_count"]).as_py()),
    }
    stem = f"{GENERATOR_PREFIX}/{start:%Y%m%d}-{end:%Y%m%d}"
    zone.write_bytes(f"{stem}-manifest.json", json.dumps(manifest, indent=2).encode())
    sink = io.BytesIO()
    pq.write_table(truth, sink)
    zone.write_bytes(f"{stem}-truth.parquet", sink.getvalue())
    return Generated(files=written, manifest=manifest, truth=truth)
