"""Where the embedded platform keeps its state, and the names shared by both code locations.

Nothing here reads the environment at import time. `state_dir()` and the resources resolve paths
when a run or command needs them, in this order: explicit resource config, then the environment
variable, then the embedded default under `<repo>/.headwater/`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

# Every asset that writes the warehouse DuckDB file runs in this pool. The instance config the
# platform ships (dagster_home/dagster.yaml) limits it to one step at a time, because DuckDB
# allows one writing process per file.
DUCKDB_POOL = "duckdb_warehouse"

# Day partitions of landed data. The first day is fixed so that partition keys never move;
# the last partition is yesterday (a day's file lands after the day is over).
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2025-01-01")

OWNER_DATA_PLATFORM = "team:data-platform"


def state_dir() -> Path:
    """The embedded platform's state folder ($HEADWATER_HOME, default `<repo>/.headwater`)."""
    return Path(os.environ.get("HEADWATER_HOME") or PROJECT_ROOT / ".headwater")


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
