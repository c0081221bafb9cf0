"""Headwater projects: `headwater init DIR` (an empty one) and `headwater demo remove`.

A project is a folder holding `dbt_project/` (the contract in sources yml, the SQL, the
partitions in dbt_project.yml) and `model_specs/` (one yml per model). An empty project gets the
platform's own parts of this repository's dbt project (dbt_project.yml with the partition
settings, profiles.yml, the macros and generic tests the platform relies on) and none of the
demo's. The demo's files are listed once, in `fraud_demo.project`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from headwater_core.config import PROJECT_ROOT, project_dir

# The platform's files of the repository's dbt project, copied into every new project.
PLATFORM_DBT_FILES = (
    "dbt_project.yml",
    "profiles.yml",
    "macros/generate_schema_name.sql",
    "macros/partition_window.sql",
    "macros/tested_rows.sql",
    # the engine-specific SQL the two above and dbt_project.yml's on-run-start hook dispatch to
    "macros/cross_db",
    "tests/generic",
)
# Empty folders of a new project: one per layer (folder = schema = Dagster group).
LAYERS = ("staging", "intermediate", "marts", "features")
GITIGNORE = ".headwater/\ndbt_project/target/\ndbt_project/logs/\ndbt_project/.user.yml\n"


class ProjectError(Exception):
    """A project that cannot be created or changed as asked; the message says why."""


def init_project(dest: Path, source: Path = PROJECT_ROOT) -> list[Path]:
    """An empty project in `dest` (absent or empty), from the platform's files of `source`;
    returns the files written."""
    dest = dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        raise ProjectError(f"{dest} is not empty; `headwater init` creates a new project")
    written: list[Path] = []
    for name in PLATFORM_DBT_FILES:
        origin, target = source / "dbt_project" / name, dest / "dbt_project" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target)
            written.extend(sorted(p for p in target.rglob("*") if p.is_file()))
        else:
            shutil.copyfile(origin, target)
            written.append(target)
    # Git keeps no empty folder: a placeholder keeps each layer's folder in a new repository.
    for folder in [*(f"dbt_project/models/{layer}" for layer in LAYERS), "model_specs"]:
        keep = dest / folder / ".gitkeep"
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.touch()
        written.append(keep)
    (dest / ".gitignore").write_text(GITIGNORE)
    written.append(dest / ".gitignore")
    return written


def next_steps(dest: Path) -> str:
    """What to do after `headwater init DIR`, as printed."""
    dbt = dest / "dbt_project"
    return "\n".join(
        [
            f"headwater: an empty project in {dest}. Next:",
            f"  export HEADWATER_PROJECT_DIR={dest}",
            f"  1. set the partitions (start, grain) in {dbt / 'dbt_project.yml'} "
            "(vars.headwater.partitions)",
            f"  2. declare each source's contract in {dbt}/models/staging/<source>/"
            "_<source>__sources.yml, its staging SQL beside it, marts in models/marts, "
            "feature sets in models/features (examples/bike_sharing is a worked example)",
            f"  3. declare each model in {dest / 'model_specs'}/<name>.yml",
            f"  4. put the landing files in {dest / '.headwater' / 'landing'} "
            "(or set HEADWATER_LANDING_DIR)",
            "  5. headwater materialize --start <first day> --end <last day>   "
            "(or headwater dev for the UI)",
        ]
    )


def remove_demo(project: Path) -> list[Path]:
    """Delete the demo's files from `project`; returns what was removed (nothing if absent)."""
    from fraud_demo.project import DEMO_FILES

    removed: list[Path] = []
    for name in DEMO_FILES:
        path = project / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


# --- the commands ---------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    try:
        init_project(Path(args.dir))
    except ProjectError as e:
        print(f"headwater: {e}", file=sys.stderr)
        return 2
    print(next_steps(Path(args.dir).resolve()))
    return 0


def cmd_demo_remove(args: argparse.Namespace) -> int:
    removed = remove_demo(project_dir())
    for path in removed:
        print(f"removed {path}")
    print(
        f"headwater: the demo is out of {project_dir()}"
        if removed
        else f"headwater: {project_dir()} holds none of the demo's files"
    )
    return 0


def add_project_commands(sub) -> None:
    """The `headwater` command's `init` and `demo remove`."""
    init = sub.add_parser("init", help="create an empty headwater project (no demo) in DIR")
    init.add_argument("dir", help="the new project's folder (absent or empty)")
    init.set_defaults(func=cmd_init)

    demo = sub.add_parser("demo", help="the fraud demo's files in the project")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True)
    remove = demo_sub.add_parser(
        "remove", help="delete the demo's yml, SQL and specs (fraud_demo/project.py lists them)"
    )
    remove.set_defaults(func=cmd_demo_remove)
