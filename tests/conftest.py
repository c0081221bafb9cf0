"""Shared fixtures: real landing files from the generator, real DuckDB files, real Dagster
instances in temporary DAGSTER_HOMEs, and the real dbt project."""

from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml

from fraud_demo.generator import GeneratorConfig, generate
from headwater.environment import EMBEDDED_INSTANCE_CONFIG
from headwater_core.dbt.project import ensure_manifest
from headwater_core.dbt.resource import dbt_cli_resource
from headwater_core.resources import LandingZone, Warehouse

# A small demo world: enough rows for every model and test to mean something, fast to build.
DEMO = GeneratorConfig(seed=7, start_date=date(2025, 1, 1), days=8, transactions=4_000)
DEMO_FIRST_DAY = "2025-01-01"
DEMO_LAST_DAY = "2025-01-08"


ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_processes(sid: int) -> dict[int, str]:
    """The live processes of session `sid` (Linux /proc), with their command lines.

    A server started with `start_new_session=True` leads a session of its own, and nothing
    under it starts another, so this is everything it started."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:  # exited meanwhile
            continue
        state, _ppid, _pgrp, session = text[text.rindex(")") + 2 :].split()[:4]
        if int(session) == sid and state != "Z":
            found[int(stat.parent.name)] = cmdline.replace(b"\0", b" ").decode()
    return found


def copy_project(dest: Path) -> Path:
    """The project's code and dbt project copied to `dest`, to add files to it in a test.

    Run code against the copy with PYTHONPATH=`dest/platform:dest`, which comes before the
    editable install of the real tree."""
    import shutil

    for folder in ("platform", "ml_assets", "dbt_project"):
        shutil.copytree(
            ROOT / folder,
            dest / folder,
            ignore=shutil.ignore_patterns("target", "logs", "__pycache__", ".user.yml"),
        )
    return dest


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The dbt manifest, parsed once per session if the project changed."""
    return ensure_manifest()


@pytest.fixture(scope="session")
def demo_landing(tmp_path_factory) -> Path:
    """Landing files of the demo world, generated once per session; copy before changing them."""
    landing = tmp_path_factory.mktemp("landing")
    generate(DEMO, landing, progress=False)
    return landing


@pytest.fixture
def landing(demo_landing, tmp_path) -> Path:
    """A private copy of the demo landing folder that a test may damage."""
    import shutil

    copy = tmp_path / "landing"
    shutil.copytree(demo_landing, copy)
    return copy


@pytest.fixture
def instance(tmp_path):
    """A real Dagster instance (SQLite storage) in a temporary DAGSTER_HOME, configured like the
    embedded one the platform ships (run queue, DuckDB pool)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    overrides = yaml.safe_load(EMBEDDED_INSTANCE_CONFIG.read_text())
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as inst:
        yield inst


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(path=str(tmp_path / "warehouse.duckdb"))


@pytest.fixture
def resources(warehouse, landing) -> dict:
    return {
        "warehouse": warehouse,
        "landing": LandingZone(path=str(landing)),
        "dbt": dbt_cli_resource(),
    }
