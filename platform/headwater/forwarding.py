"""Running a child process that gets our stop signals: how `headwater dev` runs `dagster dev`."""

import os
import signal
import subprocess

# Signals `headwater dev` passes on to `dagster dev`: Ctrl-C, a plain kill, a closed terminal.
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def run_forwarding_signals(command: list[str]) -> int:
    """Run `command` and return its exit code, passing our stop signals on to it.

    `dagster dev` used to replace this process (execv), so Ctrl-C or a kill reached it
    directly. Now this process stays to serve the reports, so the child runs in a process group
    of its own and gets each signal exactly once, from here, sent to its whole group as the
    terminal would (a second SIGINT during its shutdown would cut its cleanup short and leave
    its webserver and daemon behind).
    """
    child: subprocess.Popen | None = None
    early: list[int] = []  # received before the child existed

    def forward(signum: int, _frame) -> None:
        if child is None:
            early.append(signum)
        else:
            _signal_group(child, signum)

    forwarded = [getattr(signal, name) for name in FORWARDED_SIGNALS]
    previous = {signum: signal.signal(signum, forward) for signum in forwarded}
    try:
        child = subprocess.Popen(command, process_group=0)
        for signum in early:
            _signal_group(child, signum)
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # A child killed by a signal exits like a shell reports it.
    return 128 - code if code < 0 else code


def _signal_group(child, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:  # already gone
        pass
