"""docker-compose.yaml is for users (no Docker engine here): check its wiring by reading it."""

from __future__ import annotations

import pytest
import yaml

from meterline.config import project_root

pytestmark = pytest.mark.unit

ROOT = project_root()
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
CELERY_SERVICES = {"redis", "airflow-worker-1", "airflow-worker-2"}
SPARK_SERVICES = {"spark-master", "spark-worker-1", "spark-worker-2", "spark-thrift"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services(compose):
    assert (
        set(compose["services"])
        == {"postgres", "minio", "minio-init", "airflow-init"} | AIRFLOW_SERVICES | CELERY_SERVICES | SPARK_SERVICES
    )
    # The optional services start only with their profile: `docker compose up` is unchanged.
    default = {name for name, service in compose["services"].items() if not service.get("profiles")}
    assert default == {"postgres", "minio", "minio-init", "airflow-init"} | AIRFLOW_SERVICES
    assert all(compose["services"][name]["profiles"] == ["celery"] for name in CELERY_SERVICES)
    assert all(compose["services"][name]["profiles"] == ["spark"] for name in SPARK_SERVICES)


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
    for name in AIRFLOW_SERVICES | {"airflow-init", "airflow-worker-1", "airflow-worker-2"}:
        service = compose["services"][name]
        env = service["environment"]
        # LocalExecutor unless the Celery profile's users say otherwise.
        assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["WAREHOUSE_ENGINE"] == "${WAREHOUSE_ENGINE:-postgres}"
        assert env["SPARK_THRIFT_URL"] == "thrift://spark-thrift:10000"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert env["WAREHOUSE_URL"].startswith("postgresql://meterline:")
        assert env["AIRFLOW_CONN_WAREHOUSE"].startswith("postgres://meterline:")
        assert env["LANDING_URL"].startswith("s3://meterline/")
        assert env["OUTBOX_URL"].startswith("s3://meterline/")
        assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
        assert env["PYTHONPATH"] == "/opt/meterline/include"
        assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"
        mounts = {v.split(":")[1] for v in service["volumes"]}
        assert {"/opt/meterline/include", "/opt/meterline/dags", "/opt/meterline/dbt_project"} <= mounts
        assert env["SPARK_LAKE_DIR"].startswith("/opt/meterline/spark/") and "/opt/meterline/spark" in mounts
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW_SERVICES:
        assert compose["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert compose["services"]["airflow-apiserver"]["command"] == "api-server"


def test_celery_workers(compose):
    for name in ("airflow-worker-1", "airflow-worker-2"):
        service = compose["services"][name]
        assert service["command"].startswith("celery worker")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert compose["services"]["redis"]["image"].startswith("redis:")
    assert "celery[redis]<5.7" in (ROOT / "docker" / "Dockerfile").read_text()


def test_spark_cluster(compose):
    """A master, two workers registering with it, and the Thrift server on the master, all on the
    volume the Airflow services mount at the same path (the lake and Spark's tables)."""
    services = compose["services"]
    assert "deploy.master.Master --host spark-master --port 7077" in services["spark-master"]["command"]
    for name in ("spark-worker-1", "spark-worker-2"):
        command = services[name]["command"]
        assert "deploy.worker.Worker" in command and command.strip().endswith("spark://spark-master:7077")
    thrift = services["spark-thrift"]["command"]
    assert "HiveThriftServer2" in thrift and "--master spark://spark-master:7077" in thrift
    assert "hive.server2.thrift.port=10000" in thrift and "spark.sql.session.timeZone=UTC" in thrift
    assert "spark.sql.warehouse.dir=/opt/meterline/spark/" in thrift
    for name in SPARK_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile.spark"
        assert "spark-data:/opt/meterline/spark" in services[name]["volumes"]
    dockerfile = (ROOT / "docker" / "Dockerfile.spark").read_text()
    assert "openjdk-17-jre-headless" in dockerfile and "^pyspark==" in dockerfile
    assert any(line.startswith("pyspark==") for line in (ROOT / "requirements.txt").read_text().splitlines())


def test_minio_bucket_is_created_at_start(compose):
    assert "mc mb --ignore-existing local/meterline" in compose["services"]["minio-init"]["entrypoint"]


def test_postgres_creates_both_databases():
    init = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert "create database airflow" in init and "create database meterline" in init


LONG_RUNNING_AIRFLOW = AIRFLOW_SERVICES | {"airflow-worker-1", "airflow-worker-2"}
ONE_SHOT = {"airflow-init", "minio-init"}


def test_the_dbt_manifest_is_parsed_before_the_dag_processor_starts(compose):
    """transform_warehouse renders its tasks from target/manifest.json: airflow-init writes it
    (transform.ensure_manifest: `dbt parse` when the project changed) and fails without it, and
    the dag-processor starts only after airflow-init succeeded."""
    command = compose["services"]["airflow-init"]["command"]
    steps = [step.strip() for step in command.removeprefix('bash -c "').rstrip().removesuffix('"').split("&&")]
    assert steps == [
        "airflow db migrate",
        "python -m meterline.cli warehouse start",
        "python -c 'from meterline import transform; transform.ensure_manifest()'",
        "test -s /opt/meterline/dbt_project/target/manifest.json",
    ]
    env = compose["services"]["airflow-init"]["environment"]
    assert env.get("METERLINE_HOME") == "/opt/meterline" and "METERLINE_DBT_TARGET_PATH" not in env
    assert "./dbt_project:/opt/meterline/dbt_project" in compose["services"]["airflow-init"]["volumes"]
    processor = compose["services"]["airflow-dag-processor"]["depends_on"]
    assert processor["airflow-init"]["condition"] == "service_completed_successfully"


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy(compose):
    services = compose["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        assert service.get("restart") == "always", name
    for name in LONG_RUNNING_AIRFLOW:
        check = services[name].get("healthcheck")
        assert check, f"{name}: no healthcheck"
        assert {"interval", "timeout", "retries", "start_period"} <= set(check), name
    tests = {name: " ".join(services[name]["healthcheck"]["test"]) for name in LONG_RUNNING_AIRFLOW}
    assert "http://localhost:8080/api/v2/version" in tests["airflow-apiserver"]
    # The scheduler serves /health only when told to.
    assert "http://localhost:8974/health" in tests["airflow-scheduler"]
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "airflow jobs check --job-type DagProcessorJob" in tests["airflow-dag-processor"]
    assert "airflow jobs check --job-type TriggererJob" in tests["airflow-triggerer"]
    for name in ("airflow-worker-1", "airflow-worker-2"):
        assert "inspect ping" in tests[name] and services[name]["environment"]["DUMB_INIT_SETSID"] == "0"
    # `$$` is compose's escape: the container's shell expands HOSTNAME, not compose.
    assert '"$${HOSTNAME}"' in tests["airflow-triggerer"]


def test_airflow_runs_as_airflow_uid_with_its_secrets_from_the_environment(compose):
    for name in LONG_RUNNING_AIRFLOW | {"airflow-init"}:
        service = compose["services"][name]
        assert service["user"] == "${AIRFLOW_UID:-50000}:0", name
        # No default key or secret: `docker compose up` stops and says what to set.
        key = service["environment"]["AIRFLOW__CORE__FERNET_KEY"]
        assert key.startswith("${AIRFLOW_FERNET_KEY:?") and key.endswith("}"), name
        secret = service["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert secret.startswith("${AIRFLOW_JWT_SECRET:?") and secret.endswith("}"), name
    readme = (ROOT / "README.md").read_text()
    assert all(name in readme for name in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_UID"))


def test_images_are_pinned(compose):
    """Every image names an exact release: no `latest`, no bare major version."""
    import re

    pinned = re.compile(r"^[\w./-]+:(\d+\.\d+[\w.-]*|RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z)$")
    images = {name: service["image"] for name, service in compose["services"].items() if "image" in service}
    assert images and all(pinned.match(image) for image in images.values()), images
    for dockerfile in ("Dockerfile", "Dockerfile.spark"):
        bases = re.findall(r"^FROM (\S+)", (ROOT / "docker" / dockerfile).read_text(), re.MULTILINE)
        assert bases and all(re.match(r"^[\w./-]+:\d+\.\d+\.\d+", base) for base in bases), (dockerfile, bases)


def test_the_image_installs_no_test_tools():
    """The image installs requirements.txt alone; tests and tooling live in requirements-dev.txt,
    which `make install` adds for a development checkout."""
    import re

    def pinned(name: str) -> set[str]:
        lines = (ROOT / name).read_text().splitlines()
        return {re.split(r"[=\[]", line)[0].lower() for line in lines if re.match(r"[A-Za-z0-9]", line)}

    tools = {"pytest", "pytest-timeout", "hypothesis", "moto", "ruff"}
    assert not tools & pinned("requirements.txt")
    assert tools <= pinned("requirements-dev.txt")
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    instructions = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    assert "COPY requirements.txt" in instructions and "-r /tmp/requirements.txt" in instructions
    assert "requirements-dev" not in instructions and not tools & set(re.findall(r"[\w-]+", instructions))
    makefile = (ROOT / "Makefile").read_text()
    assert "requirements.txt requirements-dev.txt" in makefile


def test_the_readme_says_how_to_get_the_admin_password():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Docker compose") :]
    command = "docker compose exec airflow-apiserver cat /opt/airflow/simple_auth_manager_passwords.json.generated"
    assert command in section
