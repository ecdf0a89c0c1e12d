"""Running the dbt project against the warehouse, with credentials passed by environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from meterline import warehouse
from meterline.config import project_root


def project_dir() -> Path:
    return project_root() / "dbt_project"


def environment(conninfo: str | None = None) -> dict[str, str]:
    """What `dbt_project/profiles.yml` reads. The password goes in a DBT_ENV_SECRET_ variable,
    which dbt scrubs from its logs."""
    p = warehouse.params(conninfo or warehouse.url())
    env = dict(os.environ)
    env.update(
        {
            "DBT_PROFILES_DIR": str(project_dir()),
            "DBT_PROJECT_DIR": str(project_dir()),
            "METERLINE_DB_HOST": p["host"],
            "METERLINE_DB_PORT": p["port"],
            "METERLINE_DB_USER": p["user"],
            "DBT_ENV_SECRET_METERLINE_DB_PASSWORD": p["password"],
            "METERLINE_DB_NAME": p["dbname"],
        }
    )
    return env


def dbt_executable() -> str:
    return shutil.which("dbt", path=str(Path(sys.executable).parent)) or "dbt"


def run(args: list[str], conninfo: str | None = None, *, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """`dbt <args>` in the project folder; raises CalledProcessError when dbt fails."""
    return subprocess.run(
        [dbt_executable(), *args], cwd=project_dir(), env=environment(conninfo), check=check, **kwargs
    )
