"""Find CUR deliveries under `LANDING_URL/cur/` and read their manifests.

A delivery is one complete restatement of one billing period:
- legacy CUR (CSV.gz, or Parquet when so configured): `<report>-Manifest.json` under
  `<report>/<yyyymmdd-yyyymmdd>/` (and its copy in the `<assemblyId>/` folder); key = the period
  folder + `assemblyId`;
- CUR 2.0: a manifest under `<export>/metadata/BILLING_PERIOD=YYYY-MM/`, written after its data
  files; key = the export folder + `executionId`;
- legacy Athena-style Parquet without a manifest (`year=YYYY/month=M/`): the set of files of one
  partition; key = the partition folder + a checksum over the files' checksums.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow.fs as pafs

from meterline.landing import Zone

ROOT = "cur"
_LEGACY_PERIOD = re.compile(r"^(\d{8})-(\d{8})$")
_PARTITION = re.compile(r"^(?P<dir>.*/year=(?P<y>\d{4})/month=(?P<m>\d{1,2}))/[^/]+\.parquet$")
_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}[:.]?\d{2}[:.]?\d{2}(?:\.\d+)?Z)")


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
    delivered_at: datetime | None = None
    checksums: dict[str, str] = field(default_factory=dict)  # file -> sha256, filled lazily

    def checksum(self, zone: Zone) -> str:
        for rel in self.files:
            if rel not in self.checksums:
                self.checksums[rel] = zone.checksum(rel)
        digest = hashlib.sha256()
        for rel in sorted(self.files):
            digest.update(f"{rel.rsplit('/', 1)[-1]}:{self.checksums[rel]}\n".encode())
        return digest.hexdigest()


def _mtime(zone: Zone, rel: str) -> datetime | None:
    info = zone.fs.get_file_info(f"{zone.root}/{rel}")
    if info.type != pafs.FileType.File or info.mtime is None:
        return None
    stamp = info.mtime
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


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
    found = _STAMP.search(text)
    if not found:
        return None
    raw = found.group(1).replace("Z", "+00:00")
    raw = re.sub(r"T(\d{2})[.]?(\d{2})[.]?(\d{2})", r"T\1:\2:\3", raw)
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


def _legacy(zone: Zone, rel: str) -> Delivery:
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
    return Delivery(
        key=f"legacy:{period_dir}:{assembly}",
        format=fmt,
        report_name=report_name,
        billing_period=_parse_period(str(manifest["billingPeriod"].get("start", "")), where),
        files=files,
        manifest_path=rel,
        assembly_id=assembly,
        delivered_at=_stamp(str(manifest.get("creationTime") or manifest.get("deliveryTime") or ""))
        or _mtime(zone, rel),
    )


def _cur2(zone: Zone, rel: str) -> Delivery:
    where = zone.uri(rel)
    manifest = _read_manifest(zone, rel)
    execution = manifest.get("executionId")
    if not execution:
        raise ManifestError(f"{where}: manifest has no executionId")
    export_root = rel.split("/metadata/", 1)[0]
    files = [f"{export_root}/{_tail_after(key, '/data/', where)}" for key in manifest.get("dataFiles") or []]
    if not files:
        raise ManifestError(f"{where}: manifest lists no dataFiles")
    period = manifest.get("billingPeriod") or {}
    start = period.get("start") if isinstance(period, dict) else str(period)
    if not start:
        start = re.search(r"BILLING_PERIOD=(\d{4}-\d{2})", rel).group(1)
    delivered = _stamp(str(manifest.get("deliveryTime") or manifest.get("creationTime") or "")) or _stamp(files[0])
    return Delivery(
        key=f"cur2:{export_root}:{execution}",
        format="cur2_parquet",
        report_name=str(manifest.get("exportName") or export_root.rsplit("/", 1)[-1]),
        billing_period=_parse_period(str(start), where),
        files=files,
        manifest_path=rel,
        assembly_id=str(execution),
        delivered_at=delivered or _mtime(zone, rel),
    )


def discover(zone: Zone, prefix: str = ROOT) -> tuple[list[Delivery], list[str]]:
    """Every delivery under `prefix`, in load order (period, delivery time, key), and the errors
    of manifests that could not be read (those deliveries are not returned)."""
    found = zone.list(prefix)
    deliveries: dict[str, Delivery] = {}
    errors: list[str] = []
    claimed: set[str] = set()
    for landed in found:
        if not landed.path.endswith("-Manifest.json"):
            continue
        try:
            delivery = (
                _cur2(zone, landed.path) if "/metadata/BILLING_PERIOD=" in landed.path else _legacy(zone, landed.path)
            )
        except ManifestError as exc:
            errors.append(str(exc))
            continue
        claimed.update(delivery.files)
        known = deliveries.get(delivery.key)
        # The copy inside the assembly folder is immutable; the period-level one is overwritten.
        if known is None or (delivery.assembly_id or "") in delivery.manifest_path:
            deliveries[delivery.key] = delivery
    partitions: dict[str, list[str]] = {}
    for landed in found:
        match = _PARTITION.match(landed.path)
        if match and landed.path not in claimed and "/BILLING_PERIOD=" not in landed.path:
            partitions.setdefault(match.group("dir"), []).append(landed.path)
    for folder, files in partitions.items():
        match = _PARTITION.match(files[0])
        delivery = Delivery(
            key="",
            format="legacy_parquet",
            report_name=folder.split("/year=")[0].rsplit("/", 1)[-1],
            billing_period=date(int(match.group("y")), int(match.group("m")), 1),
            files=sorted(files),
        )
        delivery.key = f"partition:{folder}:{delivery.checksum(zone)}"
        stamps = [s for s in (_mtime(zone, f) for f in files) if s]
        delivery.delivered_at = max(stamps) if stamps else None
        deliveries[delivery.key] = delivery
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ordered = sorted(deliveries.values(), key=lambda d: (d.billing_period, d.delivered_at or epoch, d.key))
    return ordered, errors
