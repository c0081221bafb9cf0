"""The processes tests start: finding them in /proc and stopping them for sure (Linux).

A server a test starts leads a session of its own (`start_new_session=True`). Everything it
starts stays in that session, even after its parent exits, unless it calls setsid itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    """One entry of /proc."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str  # "Z" for a zombie: exited, not reaped yet
    cmdline: str


def read_process(pid: int) -> Process | None:
    """/proc/<pid>, or None if it exited meanwhile."""
    proc = Path("/proc") / str(pid)
    try:
        text = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return None
    # The command name in parentheses may hold spaces and parentheses of its own.
    state, ppid, pgid, sid = text[text.rindex(")") + 2 :].split()[:4]
    name = text[text.index("(") + 1 : text.rindex(")")]
    return Process(
        pid=pid,
        ppid=int(ppid),
        pgid=int(pgid),
        sid=int(sid),
        state=state,
        cmdline=cmdline.replace(b"\0", b" ").decode(errors="replace").strip() or f"[{name}]",
    )


def all_processes() -> dict[int, Process]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            process = read_process(int(entry.name))
            if process is not None:
                found[process.pid] = process
    return found


def session_processes(sid: int) -> dict[int, str]:
    """The live processes of session `sid`, with their command lines."""
    return {p.pid: p.cmdline for p in all_processes().values() if p.sid == sid and p.state != "Z"}


def descendants(pid: int, processes: dict[int, Process] | None = None) -> dict[int, Process]:
    """Every process below `pid` by parent links, zombies included, `pid` itself excluded."""
    processes = all_processes() if processes is None else processes
    children: dict[int, list[int]] = {}
    for p in processes.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found: dict[int, Process] = {}
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        if child not in found:
            found[child] = processes[child]
            stack.extend(children.get(child, []))
    return found


def kill_all(pids, timeout: float = 10.0) -> None:
    """SIGKILL each of `pids` and wait until none is alive (zombies count as gone)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in map(read_process, pids) if p is not None and p.state != "Z"]
        if not alive:
            return
        time.sleep(0.05)


def stop_process_group(
    proc: subprocess.Popen,
    timeout: float = 30.0,
    *,
    leader_only: bool = False,
    rest_timeout: float | None = None,
) -> dict[int, str]:
    """Stop a process started with `start_new_session=True`, and everything it started.

    SIGTERM to its whole process group (to the leader alone with `leader_only`, for a test of
    how the leader passes the signal on), up to `timeout` s for the leader to exit, then up to
    `rest_timeout` s (default: what is left of `timeout`) for the rest of its session; then
    SIGKILL to every process still in the session, and the leader reaped. Returns what had to
    be killed, pid -> command line: empty when everything stopped on SIGTERM.
    """
    sid = proc.pid
    start = time.monotonic()
    try:
        if leader_only:
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(sid, signal.SIGTERM)
    except ProcessLookupError:  # the leader exited and its group is empty
        pass
    try:
        proc.wait(timeout=timeout)
        if rest_timeout is None:
            rest_timeout = max(0.0, timeout - (time.monotonic() - start))
        deadline = time.monotonic() + rest_timeout
        while session_processes(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
    except subprocess.TimeoutExpired:  # the leader too is killed below
        pass
    left = session_processes(sid)
    kill_all(list(left))
    proc.wait()
    return left
