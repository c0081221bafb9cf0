"""A generated fraud world loaded into raw and built by dbt, for the feature tests.

    database = built_world(folder)     # 90 days, raw loaded, `dbt build +path:models/features`
    dbt(database, folder, ["run", "--select", "path:models/features", "--full-refresh"])

tests/integration/conftest.py builds it once per session (`fraud_world`); a test copies the file
before changing it. dbt runs in a subprocess, with a private target and log folder.
"""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from data_platform.raw.contract import load_contracts
from data_platform.raw.ingest import load_landing
from fraud_demo.generator import GeneratorConfig, generate
from headwater_core.config import dbt_project_dir

# Long enough for the matured merchant fraud rate (days D-120 .. D-61) to exist from day 61 on,
# with a higher fraud rate than the default so that it is not all zeros.
WORLD = GeneratorConfig(
    seed=11, start_date=date(2025, 1, 1), days=90, transactions=9_000, fraud_rate=0.03
)

# Everything the feature layer reads, and the feature layer.
FEATURES_AND_UPSTREAM = "+path:models/features"


def load_raw(landing: Path, database: Path) -> None:
    """Every landing file under the raw contract, as the raw assets load them."""
    load_landing(database, landing, load_contracts(dbt_project_dir()).values())


def dbt(database: Path, folder: Path, args: list[str]) -> str:
    """dbt `args` against `database`; its output (the command must succeed with no error)."""
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            *args,
            # a private target and log folder: other dbt runs may be using the project's
            "--target-path",
            str(folder / "target"),
            "--log-path",
            str(folder / "logs"),
        ],
        cwd=dbt_project_dir(),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HEADWATER_DUCKDB_PATH": str(database)},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " ERROR=0" in out.stdout, out.stdout[-3000:]
    return out.stdout


def build_features(database: Path, folder: Path, *extra: str) -> None:
    """`dbt build` of the feature layer and its upstream, data tests included."""
    dbt(
        database,
        folder,
        [
            "build",
            "--select",
            FEATURES_AND_UPSTREAM,
            "--exclude-resource-type",
            "unit_test",
            # not the tests of models outside the selection (relationships to a selected parent)
            "--indirect-selection",
            "cautious",
            *extra,
        ],
    )


def built_world(folder: Path) -> Path:
    """WORLD generated into `folder`, loaded into raw and built; the warehouse file."""
    database = folder / "warehouse.duckdb"
    generate(WORLD, folder / "landing", progress=False)
    load_raw(folder / "landing", database)
    build_features(database, folder)
    return database
