"""The `concurrent` part: two platform runs at once on one machine, as when two runs share a
code server's host or two projects share a laptop.

Each is the `full` part (`headwater materialize` of the window, then drift) in its own subprocess
with its own state folder, reading the same landing files; both start together. The figures are
each run's process wall time and its per-step times, so a step that one run's threads slow down
in the other shows up beside its twin. `python -m bench --only concurrent --unbounded-threads`
runs the same with the libraries' own thread settings (every core each, OpenMP's spinning
wait, DuckDB's 80% of RAM), which is what the platform did before its thread budget
(`headwater_core.compute`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

RUNS = 2


def part_concurrent(config: dict) -> dict:
    """Start RUNS `full` parts at once and wait for all of them; each one's figures."""
    home = Path(os.environ["HEADWATER_HOME"])
    children = []
    for index in range(1, RUNS + 1):
        folder = home / f"run-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HEADWATER_HOME": str(folder)}
        out = folder / "full.json"
        command = [sys.executable, "-m", "bench.parts", "full", "--config", json.dumps(config)]
        log = (folder / "full.log").open("w")
        child = subprocess.Popen(
            [*command, "--out", str(out)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        children.append((index, child, out, log, time.perf_counter()))
    # Each run's end as it happens (waiting in turn would stamp an early finisher late).
    ended: dict[int, float] = {}
    waiters = [
        threading.Thread(target=lambda c=c, i=i: ended.__setitem__(i, _ended(c)))
        for i, c, *_ in children
    ]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    runs = []
    for index, child, out, log, started in children:
        code = child.returncode
        wall = ended[index] - started
        log.close()
        if code != 0:
            raise RuntimeError(
                f"concurrent run {index} failed (exit {code}); see {Path(log.name)}:\n"
                + Path(log.name).read_text()[-3000:]
            )
        runs.append({"run": index, "wall_seconds": wall, **json.loads(out.read_text())})
    return {"runs": runs}


def _ended(child: subprocess.Popen) -> float:
    child.wait()
    return time.perf_counter()


def concurrent_table(part: dict) -> str:
    """Per step, its seconds in each concurrent run, slowest first (the materialise run's
    steps, then the drift runs'), and each run's wall time."""
    runs = part["runs"]
    seconds: dict[str, list[float | None]] = {}
    for position, run in enumerate(runs):
        for timed in run["runs"]:
            for step in timed["steps"]:
                row = seconds.setdefault(step["step"], [None] * len(runs))
                row[position] = (row[position] or 0.0) + step["seconds"]
    header = " | ".join(f"run {r['run']} s" for r in runs)
    lines = [f"| step | {header} |", "|---|" + "---:|" * len(runs)]
    walls = " | ".join(f"{r['wall_seconds']:.1f}" for r in runs)
    lines.append(f"| process wall time | {walls} |")
    for step, values in sorted(seconds.items(), key=lambda kv: -max(v or 0 for v in kv[1])):
        cells = " | ".join("" if v is None else f"{v:.1f}" for v in values)
        lines.append(f"| {step} | {cells} |")
    return "\n".join(lines)
