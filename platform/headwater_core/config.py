"""Where the platform keeps its state: paths resolved when they are needed, never at import.

No Dagster import, so the benchmark floor and tools use it without loading Dagster.

Nothing here reads the environment at import time. `state_dir()` and the resources resolve paths
when a run or command needs them, in this order: explicit resource config, then the environment
variable, then the embedded default under `<project>/.headwater/`.

A headwater project is a folder holding `dbt_project/` (the contract, the SQL, the partitions)
and `model_specs/` (one yml per model). This repository is one, with the fraud demo in it, and
the default; `HEADWATER_PROJECT_DIR` names another (`headwater init DIR` creates an empty one).
The platform's own files (instance config, workspace, deploy/) stay in `PROJECT_ROOT`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# The repository: the platform's code and its own files, and the default project.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def project_dir() -> Path:
    """The headwater project ($HEADWATER_PROJECT_DIR, default this repository)."""
    return Path(os.environ.get("HEADWATER_PROJECT_DIR") or PROJECT_ROOT).resolve()


def dbt_project_dir() -> Path:
    """The project's dbt project: contract (sources yml), models, macros, partitions."""
    return project_dir() / "dbt_project"


def model_specs_dir() -> Path:
    """The project's model specs, one yml per model."""
    return project_dir() / "model_specs"


def state_dir() -> Path:
    """The embedded platform's state folder ($HEADWATER_HOME, default `<project>/.headwater`)."""
    return Path(os.environ.get("HEADWATER_HOME") or project_dir() / ".headwater")


def default_duckdb_path() -> Path:
    return Path(os.environ.get("HEADWATER_DUCKDB_PATH") or state_dir() / "warehouse.duckdb")


def default_landing_dir() -> Path:
    return Path(os.environ.get("HEADWATER_LANDING_DIR") or state_dir() / "landing")


def reports_dir() -> Path:
    """Where monitoring reports (Evidently HTML and JSON) are written and served from."""
    return Path(os.environ.get("HEADWATER_REPORTS_DIR") or state_dir() / "reports")


def reports_url() -> str:
    """The HTTP address that serves `reports_dir()` (`headwater dev` starts one), or ''."""
    return os.environ.get("HEADWATER_REPORTS_URL", "").rstrip("/")


# Where `mlflow ui` listens by default, and so `headwater dev --mlflow-port`'s default.
MLFLOW_UI_PORT = 5000


def mlflow_ui_url() -> str:
    """The MLflow UI's address over the embedded store, which the models' run links name:
    $HEADWATER_MLFLOW_UI_URL, which `headwater dev` sets to the UI it serves, else where
    `mlflow ui` on the store would listen."""
    default = f"http://127.0.0.1:{MLFLOW_UI_PORT}"
    return (os.environ.get("HEADWATER_MLFLOW_UI_URL") or default).rstrip("/")


@contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there (or nothing).

    For what reads the environment when it runs, not at import: dbt's profile and flags, and
    Dagster's switches read when a run is created."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def once_per_project(build: Callable[[], T]) -> Callable[[], T]:
    """`build`, called once per project folder (`project_dir()` when asked) and remembered:
    what a code location loads is built when Dagster loads it, not at import."""
    built: dict[Path, T] = {}

    def get() -> T:
        project = project_dir()
        if project not in built:
            built[project] = build()
        return built[project]

    return get
