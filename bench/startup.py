"""Start-up figures: code location loads, `dagster definitions validate`, and the first UI.

A code location's load is what a Dagster code server does on start and on every reload: import
the module (which builds its Definitions) and resolve the repository. It is measured in a fresh
interpreter each time, in-process (import, then `defs.get_repository_def()`) and as the whole
process's wall time:

- cold: no compiled bytecode anywhere: PYTHONPYCACHEPREFIX points at an empty folder, so every
  module, the libraries' included, is compiled from source as after an install or an upgrade
  (the operating system's file cache stays warm);
- warm: the same prefix again, now filled: the usual case (median of `warm_repeats` runs).

`dagster definitions validate` and the first README command run with the bytecode the harness
compiled before the parts (a machine where the platform has run before).

The UI figure starts the first README command (`python3 dev.py up`, with a free port for the UI
and the reports, and a fresh state folder so the demo is generated) and polls: first until the
webserver answers `/server_info`, then until both code locations report LOADED over GraphQL.
Then it stops the server as a user would (SIGTERM, which `headwater dev` passes on).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCATIONS = ("data_platform.definitions", "ml_assets.definitions")

LOAD = """
import json, sys, time
started = time.perf_counter()
module = __import__(sys.argv[1], fromlist=["defs"])
imported = time.perf_counter()
module.defs.get_repository_def()
print(json.dumps({"import_seconds": imported - started,
                  "load_seconds": time.perf_counter() - started}))
"""

WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace {
    locationEntries { name loadStatus locationOrLoadError { __typename } } } } }
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def without_state(environ) -> dict[str, str]:
    """An environment minus every state setting (HEADWATER_*, DAGSTER_*, MLFLOW_*, the bytecode
    folder), with bytecode written and read (PYTHONDONTWRITEBYTECODE would make warm loads cold)."""
    return {
        k: v
        for k, v in environ.items()
        if not k.startswith(("HEADWATER_", "DAGSTER_", "MLFLOW_", "PYTHONPYCACHEPREFIX"))
        and k != "PYTHONDONTWRITEBYTECODE"
    }


def clean_environment(home: Path, pycache: str | None = None) -> dict[str, str]:
    """This process's environment minus every state setting, with HEADWATER_HOME at `home`,
    bytecode written and read (PYTHONDONTWRITEBYTECODE would make warm loads cold), in
    `pycache` if given (the harness's warmed folder)."""
    env = without_state(os.environ)
    env["HEADWATER_HOME"] = str(home)
    if pycache:
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def load_location(module: str, env: dict[str, str]) -> dict:
    """One code location load in a fresh interpreter: in-process and whole-process seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LOAD, module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {**figures, "process_seconds": time.perf_counter() - started}


def location_loads(home: Path, warm_repeats: int) -> dict[str, dict]:
    loads = {}
    for module in LOCATIONS:
        with tempfile.TemporaryDirectory(prefix="bench-pycache-") as prefix:
            env = {**clean_environment(home), "PYTHONPYCACHEPREFIX": prefix}
            cold = load_location(module, env)
            warm = [load_location(module, env) for _ in range(warm_repeats)]
        loads[module.split(".")[0]] = {
            "cold": cold,
            "warm": {k: statistics.median(w[k] for w in warm) for k in cold},
            "warm_runs": len(warm),
        }
    return loads


def validate_seconds(home: Path, pycache: str | None) -> float:
    """Wall time of `dagster definitions validate` over the workspace (both locations)."""
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate"]
        + ["-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=clean_environment(home, pycache),
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _locations_loaded(port: int) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": WORKSPACE_QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            workspace = json.load(response)["data"]["workspaceOrError"]
    except (OSError, KeyError, ValueError):
        return False
    entries = workspace.get("locationEntries", [])
    return len(entries) == len(LOCATIONS) and all(
        e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] != "PythonError"
        for e in entries
    )


def _session(sid: int) -> list[int]:
    """Live processes of session `sid` (the server started one of its own; all of it is ours)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, _ppid, _pgrp, session = text[text.rindex(")") + 2 :].split()[:4]
        if int(session) == sid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _stop(server: subprocess.Popen) -> None:
    os.kill(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 30
    while _session(server.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _session(server.pid):  # whatever outlived the shutdown
        os.kill(pid, signal.SIGKILL)


def first_command(
    home: Path, days: int, transactions: int, pycache: str | None, timeout: float = 600
) -> dict:
    """Seconds from `python3 dev.py up` to the UI answering and to both locations loaded."""
    port, reports_port = free_port(), free_port()
    python3 = shutil.which("python3") or sys.executable
    command = [python3, str(ROOT / "dev.py"), "up", "--port", str(port)]
    command += ["--reports-port", str(reports_port), "--days", str(days)]
    command += ["--transactions", str(transactions)]
    log = home / "dev.log"
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env=clean_environment(home, pycache),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    answered = loaded = None
    try:
        while time.perf_counter() - started < timeout and server.poll() is None:
            if answered is None and _answers(f"http://127.0.0.1:{port}/server_info"):
                answered = time.perf_counter() - started
            if answered is not None and _locations_loaded(port):
                loaded = time.perf_counter() - started
                break
            time.sleep(0.25)
    finally:
        _stop(server)
    if loaded is None:
        raise RuntimeError(f"the UI did not come up; the end of {log}:\n{log.read_text()[-3000:]}")
    return {
        "command": " ".join(["python3", "dev.py", *command[2:]]),
        "ui_answers_seconds": answered,
        "locations_loaded_seconds": loaded,
        "demo_days": days,
        "demo_transactions": transactions,
    }


def measure_startup(config: dict) -> dict:
    home = Path(os.environ["HEADWATER_HOME"])
    pycache = config.get("pycache")
    return {
        "locations": location_loads(home / "loads", config["warm_repeats"]),
        "validate_seconds": validate_seconds(home / "validate", pycache),
        "ui": first_command(home / "ui", config["ui_days"], config["ui_transactions"], pycache),
    }
