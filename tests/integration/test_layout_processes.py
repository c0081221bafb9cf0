"""`platform/` must never shadow the standard library's `platform` module: from the repo root,
from inside `platform/`, and inside a Dagster code server (in pytest's own process:
tests/unit/test_layout.py)."""

import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
BIN = Path(sys.executable).parent


def _is_stdlib(path: str) -> bool:
    return Path(path).resolve().parent == STDLIB


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "import platform; print(platform.__file__, platform.system())"],
        ["-m", "platform"],  # `python -m platform` prints the platform string
    ],
    ids=["python-c", "python-m"],
)
def test_from_repo_root(args):
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "Linux" in out
    if args[0] == "-c":
        assert _is_stdlib(out.split()[0])


def test_python_m_of_a_project_module():
    code = "import runpy, platform; print(platform.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "platform",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert _is_stdlib(out.strip())
    help_text = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "materialize" in help_text


def test_inside_a_dagster_code_server(tmp_path):
    out = tmp_path / "probe.json"
    env = {**os.environ, "HEADWATER_PROBE_OUT": str(out), "DAGSTER_HOME": str(tmp_path)}
    server = subprocess.Popen(
        [
            str(BIN / "dagster"),
            "code-server",
            "start",
            "-f",
            str(ROOT / "tests" / "fixtures" / "platform_probe.py"),
            "-d",
            str(ROOT),
            "-h",
            "127.0.0.1",
            "-p",
            str(free_port()),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("w"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.5)
        assert out.exists(), (tmp_path / "server.log").read_text()[-3000:]
        time.sleep(0.2)
        probe = json.loads(out.read_text())
    finally:
        stop_process_group(server, timeout=30)
    assert _is_stdlib(probe["file"]), probe
    assert probe["system"] == "Linux"
