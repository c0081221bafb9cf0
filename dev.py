#!/usr/bin/env python3
"""Set up and run headwater with nothing but Python 3.11 and pip.

    python3 dev.py up     install everything, generate demo data if absent, serve the Dagster UI
                          and daemon on http://127.0.0.1:3000 (the embedded default)
    python3 dev.py test   install everything and run the test suite (extra args go to pytest)
    python3 dev.py stack  the production profile on this machine: PostgreSQL-backed instance,
                          MLflow server, code servers, daemon and UI (docs/deploy.md; extra
                          args go to `headwater stack`)
    python3 dev.py sync   only install

It installs uv into `.tools/` if uv is not on PATH, then `uv sync --frozen` builds `.venv/` from
the committed lockfile. Standard library only: it runs before anything is installed.
"""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TOOLS = ROOT / ".tools"
UV_REQUIREMENT = "uv>=0.5,<1"


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    uv = TOOLS / "bin" / "uv"
    if not uv.exists():
        print(f"dev.py: installing {UV_REQUIREMENT} into {TOOLS}", flush=True)
        venv.EnvBuilder(with_pip=True).create(TOOLS)
        subprocess.run(
            [str(TOOLS / "bin" / "python"), "-m", "pip", "install", "--quiet", UV_REQUIREMENT],
            check=True,
        )
    return str(uv)


def sync() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"dev.py: headwater needs Python 3.11, this is {sys.version.split()[0]}")
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV)}
    subprocess.run(
        [_uv(), "sync", "--frozen", "--python", sys.executable, "--quiet"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command not in ("up", "test", "stack", "sync"):
        print(__doc__)
        return 2
    sync()
    if command == "sync":
        return 0
    os.chdir(ROOT)
    if command in ("up", "stack"):
        headwater = str(VENV / "bin" / "headwater")
        os.execv(headwater, [headwater, "dev" if command == "up" else "stack", *rest])
    python = str(VENV / "bin" / "python")
    os.execv(python, [python, "-m", "pytest", *rest])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
