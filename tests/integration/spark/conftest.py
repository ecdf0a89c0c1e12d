"""One local Spark cluster (master, two workers, Thrift server) for the session's Spark tests,
started from the pyspark wheel in a scratch folder and stopped at the end."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: `make install` installs openjdk-17-jre-headless (Debian) as root")
    from meterline.spark import cluster

    home = tmp_path_factory.mktemp("spark")
    previous = os.environ.get("METERLINE_SPARK_HOME")
    os.environ["METERLINE_SPARK_HOME"] = str(home)
    try:
        yield cluster.start(home)
    finally:
        cluster.stop(home)
        if previous is None:
            os.environ.pop("METERLINE_SPARK_HOME", None)
        else:
            os.environ["METERLINE_SPARK_HOME"] = previous
