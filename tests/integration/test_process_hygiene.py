"""The process check of tests/process_hygiene.py bites: a pytest run (in a subprocess, on a tiny
test file) that leaves a process behind fails, names it, and kills it."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.processes import read_process, stop_process_group

ROOT = Path(__file__).resolve().parents[2]

LEAK_IN_ITS_OWN_SESSION = """
import subprocess
from pathlib import Path

def test_leaks_a_server():
    server = subprocess.Popen(["sleep", "60"], start_new_session=True)
    Path("leaked.pid").write_text(str(server.pid))
"""

# The shell exits at once: its `sleep` is an orphan, re-parented away from the test.
LEAK_AN_ORPHAN = """
import subprocess
from pathlib import Path

def test_leaks_an_orphan():
    shell = "sleep 61 >/dev/null 2>&1 & echo $!"
    out = subprocess.run(["sh", "-c", shell], capture_output=True, text=True)
    Path("leaked.pid").write_text(out.stdout.strip())
"""

CLEAN = """
import subprocess

from tests.processes import stop_process_group

def test_stops_its_server():
    server = subprocess.Popen(["sleep", "60"], start_new_session=True)
    assert stop_process_group(server, timeout=5) == {}
"""

UNIT_STARTS_A_PROCESS = """
import subprocess
import pytest

@pytest.mark.unit
def test_a_unit_test_that_runs_a_command():
    subprocess.run(["true"], check=True)
"""

SIGINT_OF_A_CHILD = """
import subprocess
import sys

def test_a_child_gets_sigint_at_its_default():
    code = "import signal; print(signal.getsignal(signal.SIGINT))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "default_int_handler" in out.stdout, out.stdout
"""


def _pytest(folder: Path, source: str, *args: str, ignore_sigint: bool = False):
    """pytest with the process check on `source`, in `folder`: (exit code, output)."""
    (folder / "test_inner.py").write_text(textwrap.dedent(source))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.process_hygiene", "-p", "no:cacheprovider"]
        + ["-q", "test_inner.py", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # As a shell starts a background job.
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if ignore_sigint
        else None,
    )
    try:
        output, _ = inner.communicate(timeout=180)
    finally:
        stop_process_group(inner, timeout=10)
    return inner.returncode, output


def _alive(pid: int) -> bool:
    process = read_process(pid)
    return process is not None and process.state != "Z"


@pytest.mark.parametrize(
    "source", [LEAK_IN_ITS_OWN_SESSION, LEAK_AN_ORPHAN], ids=["session", "orphan"]
)
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_a_process_left_behind_fails_the_run_and_is_killed(tmp_path, source, xdist):
    code, output = _pytest(tmp_path, source, *xdist)
    pid = int((tmp_path / "leaked.pid").read_text())
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert "processes left behind by the tests" in output, output
    assert f"pid {pid}: sleep 6" in output, output
    assert not _alive(pid)


def test_a_run_that_stops_its_processes_passes(tmp_path):
    code, output = _pytest(tmp_path, CLEAN)
    assert code == pytest.ExitCode.OK, output
    assert "left behind" not in output


def test_a_unit_test_that_starts_a_process_fails(tmp_path):
    code, output = _pytest(tmp_path, UNIT_STARTS_A_PROCESS)
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert "a unit test starts no process" in output and "true" in output, output


def test_processes_get_sigint_at_its_default_when_pytest_runs_in_the_background(tmp_path):
    """Started with SIGINT ignored, the tests' processes still get it at its default, so a
    Dagster server, which maps SIGTERM to SIGINT's handler, stops on SIGTERM."""
    code, output = _pytest(tmp_path, SIGINT_OF_A_CHILD, ignore_sigint=True)
    assert code == pytest.ExitCode.OK, output
