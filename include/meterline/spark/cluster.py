"""A local Spark standalone cluster from the pyspark wheel: a master, two workers and the Thrift
(HiveServer2) server dbt-spark talks to, all on 127.0.0.1, data and logs under one folder
(`.spark/` of the checkout unless told otherwise).

The wheel ships the master, worker and Thrift server classes but none of Spark's `sbin/start-*`
scripts, so each process is started here with `bin/spark-class` / `bin/spark-submit`, in its own
process group, its pid and ports written to `state.json`. Nothing is downloaded: tables are
Parquet in `warehouse/`, the metastore an embedded Derby database in `metastore/`.

Sizes suit a laptop or a 2-core CI machine: each worker offers 1 core and `worker_memory`, each
executor takes `executor_memory` of it, the daemons 256 MiB each.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from meterline.config import project_root

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_THRIFT_SERVER = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


class ClusterError(RuntimeError):
    """The cluster did not start (the message names the process and its log)."""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def default_home() -> Path:
    return Path(os.environ.get("METERLINE_SPARK_HOME") or project_root() / ".spark")


@dataclass
class Cluster:
    home: Path
    master_port: int
    master_ui_port: int
    thrift_port: int
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def thrift_url(self) -> str:
        return f"thrift://{HOST}:{self.thrift_port}"

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    def log_file(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def save(self) -> None:
        data = asdict(self) | {"home": str(self.home)}
        (self.home / "state.json").write_text(json.dumps(data, indent=2))

    def alive(self) -> dict[str, bool]:
        return {name: _alive(pid) for name, pid in self.pids.items()}

    def executor_hosts(self) -> set[str]:
        """The workers the master launched executors on (from its log): `worker-...` ids."""
        text = self.log_file("master").read_text() if self.log_file("master").exists() else ""
        return set(re.findall(r"Launching executor \S+ on worker (\S+)", text))


def load(home: Path | None = None) -> Cluster | None:
    state = (home or default_home()) / "state.json"
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    return Cluster(**(data | {"home": Path(data["home"])}))


def _alive(pid: int) -> bool:
    try:  # reap it first when it is our own child (a stopped child stays a zombie until then)
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def _environment(home: Path, daemon_memory: str) -> dict[str, str]:
    return dict(os.environ) | {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOCAL_DIRS": str(home / "tmp"),
        "SPARK_LOG_DIR": str(home / "logs"),
        # The heap of the master and workers, and of the Thrift server (its driver: Spark's launcher
        # sizes a Thrift server by this, not by spark.driver.memory).
        "SPARK_DAEMON_MEMORY": daemon_memory,
        "SPARK_NO_DAEMONIZE": "1",
        # The workers' executors run pyspark only if asked; keep them on this venv's python.
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", "python3"),
    }


def _spawn(cluster: Cluster, name: str, argv: list[str], daemon_memory: str = "256m") -> None:
    out = cluster.log_file(name).open("ab")
    process = subprocess.Popen(
        argv,
        cwd=cluster.home,
        env=_environment(cluster.home, daemon_memory),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    cluster.pids[name] = process.pid
    cluster.save()


def _wait(cluster: Cluster, name: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(cluster.pids[name]):
            break
        if ready():
            return
        time.sleep(0.5)
    tail = "\n".join(cluster.log_file(name).read_text(errors="replace").splitlines()[-20:])
    raise ClusterError(f"spark {name} did not come up within {timeout:.0f} s ({cluster.log_file(name)}):\n{tail}")


def thrift_conf(cluster: Cluster, executor_memory: str) -> list[str]:
    """The Thrift server's settings: UTC sessions, ANSI SQL (a bad cast fails, never nulls),
    Parquet tables in the cluster's warehouse, Derby metastore under the cluster's home."""
    metastore = cluster.home / "metastore"
    conf = {
        "spark.sql.warehouse.dir": str(cluster.warehouse_dir),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.shuffle.partitions": "4",
        "spark.executor.memory": executor_memory,
        "spark.executor.cores": "1",
        "spark.ui.enabled": "false",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={cluster.home} -Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }
    return [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]


def start(
    home: Path | None = None,
    *,
    workers: int = 2,
    worker_memory: str = "1g",
    executor_memory: str = "640m",
    timeout: float = 180,
) -> Cluster:
    """Start the master, `workers` workers and the Thrift server (or return the running cluster).
    Returns once the Thrift server accepts connections and every worker has registered."""
    home = (home or default_home()).resolve()
    running = load(home)
    if running and all(running.alive().values()) and _listening(running.thrift_port):
        return running
    if running:
        stop(home)
    for folder in ("logs", "tmp", "warehouse", "lake", "work"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    cluster = Cluster(home, _free_port(), _free_port(), _free_port())
    bin_dir = spark_home() / "bin"
    _spawn(
        cluster,
        "master",
        [
            str(bin_dir / "spark-class"),
            "org.apache.spark.deploy.master.Master",
            *("--host", HOST, "--port", str(cluster.master_port), "--webui-port", str(cluster.master_ui_port)),
        ],
    )
    _wait(cluster, "master", lambda: _listening(cluster.master_port), timeout)
    for n in range(1, workers + 1):
        _spawn(
            cluster,
            f"worker-{n}",
            [
                str(bin_dir / "spark-class"),
                "org.apache.spark.deploy.worker.Worker",
                *("--host", HOST, "--cores", "1", "--memory", worker_memory),
                *("--webui-port", str(_free_port()), "--work-dir", str(home / "work" / f"worker-{n}")),
                cluster.master_url,
            ],
        )
    for n in range(1, workers + 1):
        log_file = cluster.log_file(f"worker-{n}")
        _wait(
            cluster, f"worker-{n}", lambda f=log_file: "Successfully registered with master" in f.read_text(), timeout
        )
    _spawn(
        cluster,
        "thrift",
        [
            str(bin_dir / "spark-submit"),
            *("--class", _THRIFT_SERVER, "--master", cluster.master_url, "--name", "meterline-thrift"),
            *thrift_conf(cluster, executor_memory),
            *("--hiveconf", f"hive.server2.thrift.port={cluster.thrift_port}"),
            *("--hiveconf", f"hive.server2.thrift.bind.host={HOST}"),
            "spark-internal",
        ],
        daemon_memory="1g",
    )
    _wait(cluster, "thrift", lambda: _listening(cluster.thrift_port), timeout)
    log.info("spark cluster up: %s, thrift %s, data in %s", cluster.master_url, cluster.thrift_url, home)
    return cluster


def stop(home: Path | None = None, *, timeout: float = 30) -> bool:
    """Stop every process of the cluster (Thrift server first); False if none was running."""
    cluster = load(home)
    if cluster is None:
        return False
    stopped = False
    for name in sorted(cluster.pids, key=lambda n: (n != "thrift", n.startswith("master"))):
        pid = cluster.pids[name]
        if not _alive(pid):
            continue
        stopped = True
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    (cluster.home / "state.json").unlink(missing_ok=True)
    return stopped


def status(home: Path | None = None) -> dict[str, object] | None:
    cluster = load(home)
    if cluster is None:
        return None
    return {
        "home": str(cluster.home),
        "master": cluster.master_url,
        "thrift": cluster.thrift_url,
        "processes": cluster.alive(),
        "thrift_listening": _listening(cluster.thrift_port),
    }
