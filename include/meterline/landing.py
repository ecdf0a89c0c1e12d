"""The landing zone and the outbox: one interface over a local folder or an `s3://` prefix.

Loaders and writers take a URL (`LANDING_URL`, `OUTBOX_URL`) and never care which it is. S3 goes
through pyarrow's filesystem, which reads Parquet and streams large objects without a local copy;
`AWS_ENDPOINT_URL_S3` points it at MinIO or any S3-compatible store.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

_CHUNK = 8 << 20


@dataclass(frozen=True)
class LandedFile:
    path: str  # relative to the zone's root, with forward slashes
    size: int


def _s3(url: str) -> tuple[pafs.FileSystem, str]:
    parsed = urlparse(url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict = {"region": os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"}
    if endpoint:
        ep = urlparse(endpoint)
        options |= {"endpoint_override": ep.netloc, "scheme": ep.scheme or "https"}
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        options |= {"access_key": key, "secret_key": secret, "session_token": os.environ.get("AWS_SESSION_TOKEN")}
    return pafs.S3FileSystem(**options), f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")


class Zone:
    """A landing zone or outbox rooted at `url` (a local path, `file://`, or `s3://bucket/prefix`)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        if url.startswith("s3://"):
            self.fs, self.root = _s3(url)
        else:
            local = Path(urlparse(url).path if url.startswith("file://") else url).resolve()
            self.fs, self.root = pafs.LocalFileSystem(), local.as_posix()
        self.is_s3 = url.startswith("s3://")

    def _full(self, relative: str) -> str:
        relative = relative.strip("/")
        return f"{self.root}/{relative}" if relative else self.root

    def uri(self, relative: str) -> str:
        """The file's URL, as recorded in ledgers and shown in errors."""
        return f"{self.url}/{relative.strip('/')}"

    def list(self, prefix: str = "", suffixes: tuple[str, ...] = ()) -> list[LandedFile]:
        """Files under `prefix`, recursively, sorted by path; a missing prefix is empty."""
        selector = pafs.FileSelector(self._full(prefix), recursive=True, allow_not_found=True)
        found = [
            LandedFile(info.path[len(self.root) + 1 :], info.size)
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        ]
        return sorted(
            (f for f in found if not suffixes or f.path.endswith(suffixes)),
            key=lambda f: f.path,
        )

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self._full(relative)).type == pafs.FileType.File

    def open(self, relative: str):
        """A binary input stream (seekable, so pyarrow can read Parquet footers from it)."""
        return self.fs.open_input_file(self._full(relative))

    def read_bytes(self, relative: str) -> bytes:
        with self.open(relative) as stream:
            return stream.read()

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write a whole object; on S3 it appears atomically, locally via a rename."""
        full = self._full(relative)
        if self.is_s3:
            # compression=None: the bytes are the object; the default ("detect") would gzip a
            # `.gz` name a second time.
            with self.fs.open_output_stream(full, compression=None) as out:
                out.write(data)
        else:
            target = Path(full)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(target)
        return self.uri(relative)

    def move(self, source: str, target: str) -> str:
        """Rename `source` to `target` (on S3 a copy and a delete): `target` appears whole."""
        if not self.is_s3:
            Path(self._full(target)).parent.mkdir(parents=True, exist_ok=True)
        self.fs.move(self._full(source), self._full(target))
        return self.uri(target)

    def delete(self, relative: str) -> None:
        self.fs.delete_file(self._full(relative))

    def checksum(self, relative: str) -> str:
        """sha256 of the file's bytes, streamed."""
        digest = hashlib.sha256()
        with self.open(relative) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


def landing(url: str | None = None) -> Zone:
    from meterline.config import settings

    return Zone(url or settings().landing_url)


def outbox(url: str | None = None) -> Zone:
    from meterline.config import settings

    return Zone(url or settings().outbox_url)
