"""Child processes that get our stop signals: how `headwater dev` runs `dagster dev` and the MLflow
UI, and stops both when it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

# Signals `headwater dev` passes on to its children: Ctrl-C, a plain kill, a closed terminal.
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
# How long a child may take to stop before its group is killed, and how long the output of a
# stopped `dagster dev` is read for (a run worker it left may still hold the pipe).
STOP_SECONDS = 60.0
DRAIN_SECONDS = 5.0


class StopSignals:
    """Passes each stop signal this process receives on to the process group of every child
    added, once, as a terminal would to its foreground group; a child added after a signal
    gets it at once.

    Each child runs in a process group of its own so that it gets each signal exactly once,
    from here: a second SIGINT during `dagster dev`'s shutdown would cut its cleanup short and
    leave its webserver and daemon behind.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._children: list[subprocess.Popen] = []

    def add(self, child: subprocess.Popen) -> subprocess.Popen:
        self._children.append(child)
        for signum in self.received:
            signal_group(child, signum)
        return child

    def forward(self, signum: int, _frame=None) -> None:
        self.received.append(signum)
        for child in self._children:
            signal_group(child, signum)


@contextmanager
def forwarding_stop_signals() -> Iterator[StopSignals]:
    """Within the block, our stop signals go to the children added to the yielded StopSignals
    instead of stopping this process."""
    stops = StopSignals()
    forwarded = [getattr(signal, name) for name in FORWARDED_SIGNALS]
    previous = {signum: signal.signal(signum, stops.forward) for signum in forwarded}
    try:
        yield stops
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_piped(
    command: list[str],
    stops: StopSignals,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `command` in a process group of its own, under `stops`, calling `on_line` with each
    line of its output (stdout and stderr) from a reader thread; return its exit code."""
    child = stops.add(
        subprocess.Popen(
            command,
            env=None if env is None else dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            text=True,
            errors="replace",
        )
    )
    reader = threading.Thread(
        target=_read_lines, args=(child, on_line), name="headwater-child-output", daemon=True
    )
    reader.start()
    code = child.wait()
    reader.join(timeout=DRAIN_SECONDS)
    # A child killed by a signal exits like a shell reports it.
    return 128 - code if code < 0 else code


def _read_lines(child: subprocess.Popen, on_line: Callable[[str], None]) -> None:
    for line in child.stdout:
        on_line(line)


def stop_group(child: subprocess.Popen, stops: StopSignals, timeout: float = STOP_SECONDS) -> int:
    """Stop a child started in a process group of its own: SIGTERM (unless a stop signal was
    already passed on to it), up to `timeout` s, then SIGKILL to whatever is left of its group.
    Returns its exit code."""
    if child.poll() is None and not stops.received:
        signal_group(child, signal.SIGTERM)
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = -signal.SIGKILL
    signal_group(child, signal.SIGKILL)  # what it left in its group goes with it
    child.wait()
    return code


def signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:  # already gone
        pass
