"""WAREHOUSE_ENGINE: postgres unless told, spark leaves the heavy models out of PostgreSQL's builds,
anything else is an operator's mistake named in one line."""

from __future__ import annotations

import pytest

from meterline.errors import InputError
from meterline.spark import engine

pytestmark = pytest.mark.unit


def test_postgres_is_the_default_and_builds_everything(monkeypatch):
    monkeypatch.delenv("WAREHOUSE_ENGINE", raising=False)
    assert engine.engine() == "postgres"
    assert engine.postgres_exclusions() == []


def test_spark_leaves_the_heavy_models_to_spark(monkeypatch):
    monkeypatch.setenv("WAREHOUSE_ENGINE", " Spark ")
    assert engine.postgres_exclusions() == ["--exclude", "tag:heavy"]


def test_an_unknown_engine_or_thrift_url_is_refused(monkeypatch):
    monkeypatch.setenv("WAREHOUSE_ENGINE", "snowflake")
    with pytest.raises(InputError, match="WAREHOUSE_ENGINE='snowflake'"):
        engine.engine()
    monkeypatch.setenv("SPARK_THRIFT_URL", "http://spark:10000")
    with pytest.raises(InputError, match="thrift://host:port"):
        engine.thrift_address()
    monkeypatch.setenv("SPARK_THRIFT_URL", "thrift://spark.internal:10001")
    assert engine.thrift_address() == ("spark.internal", 10001)
