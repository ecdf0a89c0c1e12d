"""docker-compose.yaml is for users (no Docker engine here): check its wiring by reading it."""

from __future__ import annotations

import pytest
import yaml

from meterline.config import project_root

pytestmark = pytest.mark.unit

ROOT = project_root()
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services(compose):
    assert set(compose["services"]) == {"postgres", "minio", "minio-init", "airflow-init"} | AIRFLOW_SERVICES


def test_every_mounted_and_referenced_path_exists(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "COPY requirements.txt" in dockerfile and (ROOT / "requirements.txt").is_file()


def test_airflow_services_are_wired(compose):
    for name in AIRFLOW_SERVICES | {"airflow-init"}:
        service = compose["services"][name]
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert env["WAREHOUSE_URL"].startswith("postgresql://meterline:")
        assert env["AIRFLOW_CONN_WAREHOUSE"].startswith("postgres://meterline:")
        assert env["LANDING_URL"].startswith("s3://meterline/")
        assert env["OUTBOX_URL"].startswith("s3://meterline/")
        assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
        assert env["PYTHONPATH"] == "/opt/meterline/include"
        mounts = {v.split(":")[1] for v in service["volumes"]}
        assert {"/opt/meterline/include", "/opt/meterline/dags", "/opt/meterline/dbt_project"} <= mounts
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW_SERVICES:
        assert compose["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert compose["services"]["airflow-apiserver"]["command"] == "api-server"


def test_minio_bucket_is_created_at_start(compose):
    assert "mc mb --ignore-existing local/meterline" in compose["services"]["minio-init"]["entrypoint"]


def test_postgres_creates_both_databases():
    init = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert "create database airflow" in init and "create database meterline" in init
