"""The dbt project: where it is, and its manifest kept parsed.

No Dagster definitions here, only dagster-dbt's `DbtProject`: both code locations, the
`headwater` command and the tests share it. The project is the configured one
(`headwater_core.config.dbt_project_dir`), resolved when a location loads, and its manifest is
parsed into its own `target/`. The in-process dbt adapter reads `newest_input_mtime` to know
when its parsed project is stale.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from headwater_core.config import dbt_project_dir


def dbt_project(project_dir: Path | None = None) -> DbtProject:
    """The dbt project (default: the configured project's), one object per folder."""
    return _dbt_project(Path(project_dir or dbt_project_dir()).resolve())


@cache
def _dbt_project(project_dir: Path) -> DbtProject:
    return DbtProject(project_dir=project_dir, profiles_dir=project_dir)


def target_dir(project_dir: Path | str) -> Path:
    """The dbt project's target folder, absolute (DbtProject.target_path is relative), so that
    nothing lands in whatever the current directory happens to be."""
    return Path(project_dir) / "target"


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


def ensure_manifest(project: DbtProject | None = None) -> Path:
    """Parse the dbt project if its manifest is missing or older than any model, macro or yml.

    This is what makes an analyst's new or edited model appear in the UI on reload with no
    Python change. A lock file keeps the two code locations, which load at the same time, from
    parsing into one target folder at once.
    """
    project = project or dbt_project()
    target = target_dir(project.project_dir)
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


def window_vars(start: datetime, end: datetime, grain: str) -> tuple[str, str]:
    """A partition window as dbt's `min_date` / `max_date`: dates (in the partitions' time
    zone), or UTC timestamps for hourly partitions, whose window is not whole days."""
    if grain == "hourly":
        return tuple(t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") for t in (start, end))
    return start.date().isoformat(), end.date().isoformat()


def dbt_vars(window: tuple[str, str]) -> list[str]:
    """The `--vars` of a partitioned run: the partition window its models filter on."""
    return ["--vars", json.dumps({"min_date": window[0], "max_date": window[1]})]
