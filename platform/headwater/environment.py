"""The embedded platform's environment: the state folder's variables, the committed Dagster
instance config and the workspace every `headwater` command and the simulation run against.

Nothing is read or set at import; `configure_environment` does it when a command starts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from headwater_core.config import PROJECT_ROOT, state_dir

EMBEDDED_INSTANCE_CONFIG = PROJECT_ROOT / "dagster_instance" / "embedded.yaml"
WORKSPACE = PROJECT_ROOT / "workspace.yaml"


def configure_environment(home: Path | None = None) -> Path:
    """Set the state folder's variables for this process and its children; returns the folder."""
    home = Path(home or state_dir()).resolve()
    os.environ["HEADWATER_HOME"] = str(home)
    os.environ.setdefault("HEADWATER_DUCKDB_PATH", str(home / "warehouse.duckdb"))
    os.environ.setdefault("HEADWATER_LANDING_DIR", str(home / "landing"))
    embedded_home = home / "dagster_home"
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(embedded_home)))
    if dagster_home == embedded_home:
        # The embedded instance always runs the committed config; a DAGSTER_HOME set by the
        # user is theirs to configure.
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EMBEDDED_INSTANCE_CONFIG, dagster_home / "dagster.yaml")
    return home
