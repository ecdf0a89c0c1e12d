"""The landing zone reads and writes the same way on a local folder and on S3 (moto server)."""

from __future__ import annotations

import hashlib

import pytest

from meterline.landing import LandedFile, Zone

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def zone(request, tmp_path) -> Zone:
    if request.param == "local":
        return Zone(str(tmp_path / "landing"))
    return Zone(request.getfixturevalue("s3_bucket") + "/landing")


def test_write_list_read_checksum(zone: Zone):
    zone.write_bytes("events/year=2025/month=03/day=01/a.jsonl", b'{"a": 1}\n')
    zone.write_bytes("events/year=2025/month=03/day=02/b.parquet", b"PAR1")
    zone.write_bytes("cur/x.csv", b"x")

    assert zone.list("events") == [
        LandedFile("events/year=2025/month=03/day=01/a.jsonl", 9),
        LandedFile("events/year=2025/month=03/day=02/b.parquet", 4),
    ]
    assert [f.path for f in zone.list("events", suffixes=(".jsonl",))] == ["events/year=2025/month=03/day=01/a.jsonl"]
    assert zone.list("nothing/here") == []
    assert zone.read_bytes("cur/x.csv") == b"x"
    assert zone.checksum("cur/x.csv") == hashlib.sha256(b"x").hexdigest()
    assert zone.exists("cur/x.csv") and not zone.exists("cur/y.csv")
    assert zone.uri("cur/x.csv") == zone.url + "/cur/x.csv"


def test_overwrite_replaces_the_object(zone: Zone):
    zone.write_bytes("f.txt", b"one")
    zone.write_bytes("f.txt", b"two")
    assert zone.read_bytes("f.txt") == b"two"
    assert [f.path for f in zone.list()] == ["f.txt"]
