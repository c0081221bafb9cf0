"""Peak memory of a process tree, read from Linux /proc (no third-party dependency).

A sampler thread walks /proc every `interval` seconds, finds the root process and every process
descending from it (by parent pid), and sums two figures over them:

- RSS (`/proc/<pid>/statm`, resident pages): what `top` shows per process. Summed over processes
  it counts shared pages (libraries, copy-on-write pages after fork) once per process, so it is
  an upper bound of the tree's real footprint.
- PSS (`/proc/<pid>/smaps_rollup`): each shared page divided among the processes sharing it, so
  the sum is the tree's real share of physical memory.

The peak is the highest sum seen at any sample; a spike shorter than the interval can be missed.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PROC = Path("/proc")


@dataclass
class MemoryPeak:
    """The highest summed RSS and PSS of a process tree seen by the sampler, in bytes."""

    rss_bytes: int = 0
    pss_bytes: int = 0
    samples: int = 0
    max_processes: int = 0


def parent_pids() -> dict[int, int]:
    """Every live process's parent pid, from /proc/<pid>/stat."""
    parents = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited while we looked
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def descendants(root: int, parents: dict[int, int]) -> set[int]:
    """`root` and every process whose chain of parents reaches it."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree.add(pid)
        todo.extend(children.get(pid, ()))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it is gone)."""
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process (0 if it is gone or the kernel has no rollup)."""
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler:
    """Samples the memory of `root`'s process tree in a thread until `stop()`."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root = root
        self.interval = interval
        self.peak = MemoryPeak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> MemoryPeak:
        self._stop.set()
        self._thread.join()
        return self.peak

    def sample(self) -> None:
        # The root itself is sampled by pid even after it exits, which yields 0: harmless.
        tree = descendants(self.root, parent_pids())
        self.peak.rss_bytes = max(self.peak.rss_bytes, sum(rss_bytes(p) for p in tree))
        self.peak.pss_bytes = max(self.peak.pss_bytes, sum(pss_bytes(p) for p in tree))
        self.peak.samples += 1
        self.peak.max_processes = max(self.peak.max_processes, len(tree))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)
