"""The dbt project: where it is, and its manifest kept parsed.

No Dagster definitions here, only dagster-dbt's `DbtProject`: both code locations, the
`headwater` command and the tests share it. The in-process dbt adapter reads
`newest_input_mtime` to know when its parsed project is stale.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from headwater_core.config import DBT_PROJECT_DIR

DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# DbtProject.target_path is relative ("target"); everything here uses the absolute folder, so
# nothing lands in whatever the current directory happens to be.
TARGET_DIR = Path(DBT_PROJECT.project_dir) / DBT_PROJECT.target_path

# Files whose change means the manifest must be parsed again.
_DBT_INPUTS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")


def newest_input_mtime(project_dir: Path) -> float:
    """The newest change to anything dbt parses: a later one means the manifest is stale."""
    newest = max(
        (project_dir / name).stat().st_mtime for name in ("dbt_project.yml", "profiles.yml")
    )
    for folder in _DBT_INPUTS:
        for path in (project_dir / folder).rglob("*"):
            if path.suffix in (".sql", ".yml", ".yaml", ".csv", ".md"):
                newest = max(newest, path.stat().st_mtime)
    # A file deleted from a folder changes the folder's mtime.
    for folder in _DBT_INPUTS:
        for path in [project_dir / folder, *(project_dir / folder).rglob("*/")]:
            if path.is_dir():
                newest = max(newest, path.stat().st_mtime)
    return newest


def ensure_manifest(project: DbtProject = DBT_PROJECT) -> Path:
    """Parse the dbt project if its manifest is missing or older than any model, macro or yml.

    This is what makes an analyst's new or edited model appear in the UI on reload with no
    Python change. A lock file keeps the two code locations, which load at the same time, from
    parsing into one target folder at once.
    """
    target = Path(project.project_dir) / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = project.manifest_path
        if not manifest.exists() or manifest.stat().st_mtime < newest_input_mtime(
            project.project_dir
        ):
            dbt_parse(project)
    return project.manifest_path


def dbt_executable() -> str:
    """dbt as installed beside this interpreter, whether or not the virtualenv is activated."""
    return str(Path(sys.executable).parent / "dbt")


def dbt_parse(project: DbtProject) -> None:
    """`dbt parse` in a subprocess, writing the manifest into the project's target folder."""
    result = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--quiet",
            "--project-dir",
            str(project.project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            "--target-path",
            str(project.target_path),
        ],
        cwd=project.project_dir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        # An analyst's broken model: show dbt's own message where the location fails to load.
        raise RuntimeError(
            f"dbt parse failed in {project.project_dir}:\n{result.stdout}{result.stderr}"
        )


def dbt_vars(window: tuple[str, str]) -> list[str]:
    """The `--vars` of a daily run: the partition window its models filter on."""
    return ["--vars", json.dumps({"min_date": window[0], "max_date": window[1]})]
