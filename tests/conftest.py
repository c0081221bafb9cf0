"""Shared fixtures: real landing files from the generator, real DuckDB files, real Dagster
instances in temporary DAGSTER_HOMEs, and the real dbt project.

Tiers: a test under tests/unit is marked `unit` (no subprocess, no dbt parse: seconds), one under
tests/integration `integration`; `slow`, `calibration` and `bench` are marked by hand. The dbt
manifest is parsed once per session for the integration tests only (tests/integration/conftest.py).
"""

import itertools
import re
from datetime import date
from pathlib import Path

import pytest

from fraud_demo.generator import GeneratorConfig, generate

pytest_plugins = ["tests.process_hygiene"]

# A small demo world: enough rows for every model and test to mean something, fast to build.
DEMO = GeneratorConfig(seed=7, start_date=date(2025, 1, 1), days=8, transactions=4_000)
DEMO_FIRST_DAY = "2025-01-01"
DEMO_LAST_DAY = "2025-01-08"


ROOT = Path(__file__).resolve().parents[1]
TIERS = {"unit": ROOT / "tests" / "unit", "integration": ROOT / "tests" / "integration"}


MARKED_BY_HAND = ("slow", "bench", "calibration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test gets the marker of its tier's folder, so `-m unit` or `-m integration` selects
    a tier alone."""
    for item in items:
        for marker, folder in TIERS.items():
            if item.path.is_relative_to(folder):
                item.add_marker(marker)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A tier's folder that `-m` cannot select from is not even imported: collecting the
    integration tests loads both code locations, which parses dbt if the project changed."""
    for tier, folder in TIERS.items():
        if collection_path == folder and not _may_select(config.getoption("markexpr"), tier):
            return True
    return None


def _may_select(markexpr: str, tier: str) -> bool:
    """Whether `-m markexpr` can match a test of `tier`, whatever its hand-set markers.

    A mark expression is marker names joined by and / or / not and parentheses: each name is
    replaced by whether such a test would carry it, and the boolean left is evaluated. Anything
    else (another marker, a keyword argument) is not understood here, and the folder is
    collected."""
    names = set(re.findall(r"[A-Za-z_]\w*", markexpr)) - {"and", "or", "not"}
    if not markexpr or not re.fullmatch(r"[\w\s()]*", markexpr):
        return True
    if not names <= {*TIERS, *MARKED_BY_HAND}:
        return True
    for extra in itertools.chain.from_iterable(
        itertools.combinations(MARKED_BY_HAND, n) for n in range(len(MARKED_BY_HAND) + 1)
    ):
        present = {tier, *extra}
        boolean = re.sub(
            r"[A-Za-z_]\w*",
            lambda m, present=present: (
                m[0] if m[0] in ("and", "or", "not") else str(m[0] in present)
            ),
            markexpr,
        )
        # only True, False, and, or, not and parentheses are left
        if eval(boolean, {"__builtins__": {}}):
            return True
    return False


def query(warehouse, sql: str) -> list[tuple]:
    """The rows of `sql` on the warehouse file, read-only (the test's own look at the data)."""
    import duckdb

    con = duckdb.connect(str(warehouse.resolved_path()), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_project(dest: Path) -> Path:
    """The project's code and dbt project copied to `dest`, to add files to it in a test.

    Run code against the copy with PYTHONPATH=`dest/platform:dest`, which comes before the
    editable install of the real tree."""
    import shutil

    for folder in ("platform", "ml_assets", "dbt_project", "model_specs"):
        shutil.copytree(
            ROOT / folder,
            dest / folder,
            ignore=shutil.ignore_patterns("target", "logs", "__pycache__", ".user.yml"),
        )
    return dest


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
    import dagster as dg
    import yaml

    from headwater.environment import EMBEDDED_INSTANCE_CONFIG

    home = tmp_path / "dagster_home"
    home.mkdir()
    overrides = yaml.safe_load(EMBEDDED_INSTANCE_CONFIG.read_text())
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as inst:
        yield inst


@pytest.fixture
def warehouse(tmp_path):
    from headwater_core.resources import Warehouse

    return Warehouse(path=str(tmp_path / "warehouse.duckdb"))


@pytest.fixture
def resources(warehouse, landing) -> dict:
    from headwater_core.dbt.resource import dbt_cli_resource
    from headwater_core.resources import LandingZone

    return {
        "warehouse": warehouse,
        "landing": LandingZone(path=str(landing)),
        "dbt": dbt_cli_resource(),
    }
