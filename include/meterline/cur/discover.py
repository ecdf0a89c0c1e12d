"""Find CUR deliveries under `LANDING_URL/cur/` and read their manifests.

A delivery is one complete restatement of one billing period:
- legacy CUR (CSV.gz, or Parquet when so configured): `<report>-Manifest.json` under
  `<report>/<yyyymmdd-yyyymmdd>/` (and its copy in the `<assemblyId>/` folder); key = the period
  folder + `assemblyId`;
- CUR 2.0: a manifest under `<export>/metadata/BILLING_PERIOD=YYYY-MM/`, written after its data
  files; key = the export folder + `executionId`;
- legacy Athena-style Parquet without a manifest (`year=YYYY/month=M/`): the set of files of one
  partition; key = the partition folder + a checksum over the files' checksums.

Which delivery of a report's period is current is decided from what AWS writes, never from file
modification times (a restored or copied object gets a new one):
1. the period-level manifest (`<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json`, CUR 2.0
   `metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json`), which AWS overwrites on every refresh,
   names the current assemblyId / executionId;
2. without one, the time AWS wrote into the manifests (`creationTime`, `deliveryTime`) or into the
   CUR 2.0 data folder name (`<timestamp>-<executionId>`): the latest is current;
3. with neither, several deliveries of one period cannot be ordered: none is loaded, and the run
   says why (a single delivery is simply current).
The loader adds what only the data says: a final month (bill_invoice_id) is never replaced by a
non-final delivery.

A delivery may not be complete yet. AWS keeps `cost_and_usage_data_status/` (Parquet, one column
`status`: `READY` or `UPDATING`) beside an Athena-integrated report and sets it to UPDATING while it
rewrites the report's files: every delivery under that report waits until it says READY. A
partition without a manifest or a status file loads only once two runs have seen the same file set
(`settle`): a partition whose files are still arriving changes its key and waits again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from meterline.landing import Zone

ROOT = "cur"
_LEGACY_PERIOD = re.compile(r"^(\d{8})-(\d{8})$")
_PARTITION = re.compile(r"^(?P<dir>.*/year=(?P<y>\d{4})/month=(?P<m>\d{1,2}))/[^/]+\.parquet$")
_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}[:.]?\d{2}[:.]?\d{2}(?:\.\d+)?Z)")
_COMPACT_STAMP = re.compile(r"^(\d{8})T(\d{6})(?:\.\d+)?Z$")
STATUS_DIR = "cost_and_usage_data_status"


class ManifestError(ValueError):
    """A manifest that cannot be used: names the file and the reason."""


@dataclass
class Delivery:
    key: str
    format: str  # legacy_csv | legacy_parquet | cur2_parquet | flat_csv
    report_name: str
    billing_period: date
    files: list[str]  # zone-relative
    manifest_path: str | None = None
    assembly_id: str | None = None
    delivered_at: datetime | None = None  # written by AWS (manifest or folder name), never a file time
    checksums: dict[str, str] = field(default_factory=dict)  # file -> sha256, filled lazily
    group: str = ""  # the report's folder for this period: its deliveries restate each other
    current: bool = True  # the delivery AWS names (or last wrote) for its group
    reason: str = ""  # why it is not current, or why its group cannot be ordered
    ambiguous: bool = False  # its group has several deliveries and nothing AWS wrote orders them
    waiting: str = ""  # why it must wait: the report is being refreshed
    settle: bool = False  # no manifest and no status file: loads when two runs see the same files

    def checksum(self, zone: Zone) -> str:
        for rel in self.files:
            if rel not in self.checksums:
                self.checksums[rel] = zone.checksum(rel)
        digest = hashlib.sha256()
        for rel in sorted(self.files):
            digest.update(f"{rel.rsplit('/', 1)[-1]}:{self.checksums[rel]}\n".encode())
        return digest.hexdigest()

    def checksum_if_known(self) -> str | None:
        """The checksum when every file's is known already (no file is read)."""
        if all(rel in self.checksums for rel in self.files):
            digest = hashlib.sha256()
            for rel in sorted(self.files):
                digest.update(f"{rel.rsplit('/', 1)[-1]}:{self.checksums[rel]}\n".encode())
            return digest.hexdigest()
        return None


def _parse_period(value: str, where: str) -> date:
    """`20231101T000000.000Z`, `2024-03-01T00:00:00.000Z` or `2024-03` -> the month's first day."""
    digits = re.sub(r"[^0-9]", "", value or "")
    if len(digits) < 6:
        raise ManifestError(f"{where}: billingPeriod {value!r} is not a date")
    try:
        return date(int(digits[:4]), int(digits[4:6]), 1)
    except ValueError as exc:
        raise ManifestError(f"{where}: billingPeriod {value!r}: {exc}") from exc


def _stamp(text: str) -> datetime | None:
    """A UTC time as AWS writes it: `2025-04-02T06:00:00.000Z`, `2025-04-02T060000Z`,
    `20250402T060000.000Z` (legacy manifests); None when the text holds none."""
    compact = _COMPACT_STAMP.match(text.strip())
    if compact:
        text = f"{compact.group(1)[:4]}-{compact.group(1)[4:6]}-{compact.group(1)[6:]}T{compact.group(2)}Z"
    found = _STAMP.search(text)
    if not found:
        return None
    raw = found.group(1).replace("Z", "+00:00")
    raw = re.sub(r"T(\d{2})[.:]?(\d{2})[.:]?(\d{2})", r"T\1:\2:\3", raw)
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def _read_manifest(zone: Zone, rel: str) -> dict:
    try:
        manifest = json.loads(zone.read_bytes(rel))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{zone.uri(rel)}: not a JSON manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ManifestError(f"{zone.uri(rel)}: not a JSON object")
    return manifest


def _tail_after(key: str, marker: str, where: str) -> str:
    rooted = "/" + key
    index = rooted.find(marker)
    if index < 0:
        raise ManifestError(f"{where}: data file {key!r} is not under {marker.strip('/')!r}")
    return rooted[index + 1 :]


def _legacy(zone: Zone, rel: str) -> tuple[Delivery, bool]:
    """The delivery a legacy manifest describes, and whether it is the period-level manifest."""
    where = zone.uri(rel)
    manifest = _read_manifest(zone, rel)
    for required in ("assemblyId", "billingPeriod", "reportKeys"):
        if required not in manifest:
            raise ManifestError(f"{where}: manifest has no {required}")
    parts = rel.split("/")
    period_index = max((i for i, p in enumerate(parts[:-1]) if _LEGACY_PERIOD.match(p)), default=None)
    if period_index is None:
        raise ManifestError(f"{where}: not under a <yyyymmdd-yyyymmdd> folder")
    period_dir = "/".join(parts[: period_index + 1])
    period_folder = parts[period_index]
    report_name = manifest.get("reportName") or parts[period_index - 1]
    files = [
        f"{period_dir}/{_tail_after(key, '/' + period_folder + '/', where).split('/', 1)[1]}"
        for key in manifest["reportKeys"]
    ]
    fmt = "legacy_parquet" if all(f.endswith(".parquet") for f in files) else "legacy_csv"
    assembly = str(manifest["assemblyId"])
    billing = manifest["billingPeriod"] if isinstance(manifest["billingPeriod"], dict) else {}
    delivery = Delivery(
        key=f"legacy:{period_dir}:{assembly}",
        format=fmt,
        report_name=report_name,
        billing_period=_parse_period(str(billing.get("start", "")), where),
        files=files,
        manifest_path=rel,
        assembly_id=assembly,
        delivered_at=_stamp(str(manifest.get("creationTime") or manifest.get("deliveryTime") or "")),
        group=period_dir,
    )
    return delivery, len(parts) == period_index + 2


def _cur2(zone: Zone, rel: str) -> tuple[Delivery, bool]:
    """The delivery a CUR 2.0 manifest describes, and whether it is the period-level manifest."""
    where = zone.uri(rel)
    manifest = _read_manifest(zone, rel)
    execution = manifest.get("executionId")
    if not execution:
        raise ManifestError(f"{where}: manifest has no executionId")
    export_root, under = rel.split("/metadata/", 1)
    files = [f"{export_root}/{_tail_after(key, '/data/', where)}" for key in manifest.get("dataFiles") or []]
    if not files:
        raise ManifestError(f"{where}: manifest lists no dataFiles")
    period = manifest.get("billingPeriod") or {}
    start = period.get("start") if isinstance(period, dict) else str(period)
    partition = re.search(r"BILLING_PERIOD=(\d{4}-\d{2})", rel)
    if not start and partition:
        start = partition.group(1)
    delivered = _stamp(str(manifest.get("deliveryTime") or manifest.get("creationTime") or "")) or _stamp(
        files[0].rsplit("/", 1)[0].rsplit("/", 1)[-1]
    )
    billing_period = _parse_period(str(start or ""), where)
    delivery = Delivery(
        key=f"cur2:{export_root}:{execution}",
        format="cur2_parquet",
        report_name=str(manifest.get("exportName") or export_root.rsplit("/", 1)[-1]),
        billing_period=billing_period,
        files=files,
        manifest_path=rel,
        assembly_id=str(execution),
        delivered_at=delivered,
        group=f"{export_root}/BILLING_PERIOD={billing_period:%Y-%m}",
    )
    return delivery, under.count("/") == 1


def report_status(zone: Zone, files: list[str]) -> dict[str, str]:
    """Report folder -> `READY` / `UPDATING` (or why the status cannot be read), from every
    `cost_and_usage_data_status/` folder AWS keeps beside an Athena-integrated report."""
    statuses: dict[str, list[str]] = {}
    for rel in files:
        if f"/{STATUS_DIR}/" not in f"/{rel}" or not rel.endswith(".parquet"):
            continue
        folder = f"/{rel}".split(f"/{STATUS_DIR}/", 1)[0].lstrip("/")
        try:
            with zone.open(rel) as stream:
                values = pq.read_table(stream, columns=["status"]).column("status").to_pylist()
        except (pa.ArrowException, OSError, KeyError) as exc:
            statuses.setdefault(folder, []).append(f"unreadable status file {zone.uri(rel)} ({exc})")
            continue
        statuses.setdefault(folder, []).extend(str(v).strip().upper() for v in values if v is not None)
    summary = {}
    for folder, values in statuses.items():
        unreadable = [v for v in values if v.startswith("unreadable")]
        if unreadable:
            summary[folder] = unreadable[0]
        elif "UPDATING" in values:
            summary[folder] = "UPDATING"
        elif values and all(v == "READY" for v in values):
            summary[folder] = "READY"
        else:
            summary[folder] = f"status {sorted(set(values)) or 'empty'} is neither READY nor UPDATING"
    return summary


def _status_of(path: str, statuses: dict[str, str]) -> tuple[str, str] | None:
    """The nearest report folder above `path` that has a status, and that status."""
    parts = path.split("/")
    for depth in range(len(parts) - 1, 0, -1):
        folder = "/".join(parts[:depth])
        if folder in statuses:
            return folder, statuses[folder]
    return None


def _order(groups: dict[str, list[Delivery]], named: dict[str, tuple[str, str]], zone: Zone) -> None:
    """Mark each group's current delivery (see the module docstring)."""
    for group, members in groups.items():
        if group in named:
            assembly, path = named[group]
            for d in members:
                if d.assembly_id != assembly:
                    d.current = False
                    d.reason = f"not current: the period manifest {zone.uri(path)} names {assembly}"
            continue
        if len(members) == 1:
            continue
        if all(d.delivered_at for d in members):
            latest = max(members, key=lambda d: (d.delivered_at, d.key))
            for d in members:
                if d is not latest:
                    d.current = False
                    d.reason = (
                        f"not current: {latest.assembly_id} of {latest.delivered_at:%Y-%m-%dT%H:%M:%SZ}"
                        f" is newer (this one {d.delivered_at:%Y-%m-%dT%H:%M:%SZ})"
                    )
            continue
        for d in members:
            d.current = False
            d.ambiguous = True
            d.reason = (
                f"cannot tell which of {len(members)} deliveries of {group} is current: no period-level"
                " manifest and no creationTime in their manifests (file times are not evidence);"
                " restore the period-level manifest AWS wrote"
            )


def discover(zone: Zone, prefix: str = ROOT) -> tuple[list[Delivery], list[str]]:
    """Every delivery under `prefix`, in load order (period, delivery time, key), each marked
    current or not (with the reason) and waiting or not, and the errors of manifests that could
    not be read (those deliveries are not returned)."""
    found = zone.list(prefix)
    deliveries: dict[str, Delivery] = {}
    errors: list[str] = []
    claimed: set[str] = set()
    named: dict[str, tuple[str, str]] = {}  # group -> (assembly named by the period manifest, its path)
    for landed in found:
        if not landed.path.endswith("-Manifest.json"):
            continue
        try:
            delivery, period_level = (
                _cur2(zone, landed.path) if "/metadata/BILLING_PERIOD=" in landed.path else _legacy(zone, landed.path)
            )
        except ManifestError as exc:
            errors.append(str(exc))
            continue
        if period_level:
            named[delivery.group] = (delivery.assembly_id or "", landed.path)
        claimed.update(delivery.files)
        known = deliveries.get(delivery.key)
        # The copy inside the assembly folder is immutable; the period-level one is overwritten.
        if known is None or not period_level:
            deliveries[delivery.key] = delivery
    partitions: dict[str, list[str]] = {}
    for landed in found:
        match = _PARTITION.match(landed.path)
        if (
            match
            and landed.path not in claimed
            and "/BILLING_PERIOD=" not in landed.path
            and f"/{STATUS_DIR}/" not in landed.path
        ):
            partitions.setdefault(match.group("dir"), []).append(landed.path)
    for folder, files in partitions.items():
        match = _PARTITION.match(files[0])
        delivery = Delivery(
            key="",
            format="legacy_parquet",
            report_name=folder.split("/year=")[0].rsplit("/", 1)[-1],
            billing_period=date(int(match.group("y")), int(match.group("m")), 1),
            files=sorted(files),
            group=folder,
        )
        delivery.key = f"partition:{folder}:{delivery.checksum(zone)}"
        deliveries[delivery.key] = delivery
    groups: dict[str, list[Delivery]] = {}
    for delivery in deliveries.values():
        groups.setdefault(delivery.group, []).append(delivery)
    _order(groups, named, zone)
    statuses = report_status(zone, [f.path for f in found])
    for delivery in deliveries.values():
        status = _status_of(delivery.files[0], statuses)
        if status is None:
            delivery.settle = delivery.key.startswith("partition:")
        elif status[1] != "READY":
            where = zone.uri(f"{status[0]}/{STATUS_DIR}/")
            delivery.waiting = (
                f"AWS is refreshing the report ({where} says UPDATING)"
                if status[1] == "UPDATING"
                else f"{where}: {status[1]}"
            )
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ordered = sorted(deliveries.values(), key=lambda d: (d.billing_period, d.delivered_at or epoch, d.key))
    return ordered, errors
