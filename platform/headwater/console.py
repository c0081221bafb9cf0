"""What `headwater dev` shows on its console of the output of `dagster dev` and everything under
it (webserver, daemon, code servers, run workers): warnings and failures, not the stream of
DEBUG events, dbt's SQL and Dagster's beta notices. Every line still goes to the full log.

`ConsoleFilter` is pure, lines in and lines out: it groups lines into records (a Dagster log
line opens one; the lines after it that do not look like one, such as a traceback or dbt's raw
output, belong to it) and decides per record. `Console` writes: the full log, and the console.
"""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass, field
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Dagster's log line: `2026-11-30 11:47:17 +0000 - dagster.daemon.X - WARNING - message`.
_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - (?P<logger>\S+) - "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) - "
)
# A run's record names its run id: its failure is summed up in the run's line (run_lines.py).
_RUN_ID = re.compile(r" - [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} - ")
# A Python traceback or a click error printed outside any logger: a crash worth seeing.
_RAW_FAILURE = re.compile(r"^(Traceback \(most recent call last\):|Error: )")
SHOWN_LEVELS = ("WARNING", "ERROR", "CRITICAL")
# Warnings that say nothing to a person running the platform, and repeat: Dagster's notices
# about its own beta and preview APIs (each code location load, each run), that `dagster dev`
# is superseded by `dg dev`, and dagster-dbt's note, once per source test on every warehouse
# run, that dbt ran a test outside the check selection. Only `headwater dev`'s console drops
# them; the full log keeps them.
NOISE = (
    "BetaWarning:",
    "PreviewWarning:",
    "SupersessionWarning:",
    "instead of an `AssetCheckResult` for dbt test",
    # The daemon, on a new instance's first start, once per event type it follows.
    "No cursor for event type",
)
# INFO lines a person waits for.
SHOWN_INFO = ("Serving dagster-webserver on",)
# Lines of a failure's record shown before the rest is left to the full log.
FAILURE_LINES = 30


def plain(line: str) -> str:
    """The line without terminal colours and its line ending."""
    return _ANSI.sub("", line).rstrip("\r\n")


@dataclass
class ConsoleFilter:
    """Feed it `dagster dev`'s lines one at a time; it returns those a person should see.

    Shown: the first line of a WARNING record (unless it is in NOISE), of an INFO record in
    SHOWN_INFO and of a run's ERROR record (its run's line says why it failed); any other ERROR
    or CRITICAL record, or a traceback printed outside an error's record, with up to
    FAILURE_LINES of what follows it. Dropped: DEBUG and INFO records and what is printed under
    them.
    """

    log_name: str = "the full log"
    _shown_lines: int = field(default=0, init=False)  # of the current record, when shown
    _limit: int = field(default=0, init=False)  # lines of the current record that may show
    _cut: bool = field(default=False, init=False)
    _error: bool = field(default=False, init=False)  # whether the current record is an error

    def feed(self, line: str) -> list[str]:
        text = plain(line)
        record = _RECORD.match(text)
        if record:
            return self._open(text, record["level"])
        if _RAW_FAILURE.match(text) and not self._error:
            return self._open(text, "ERROR")
        if self._shown_lines >= self._limit:
            return self._cut_off()
        self._shown_lines += 1
        return [text]

    def _open(self, text: str, level: str) -> list[str]:
        self._shown_lines, self._cut = 0, False
        self._error = level in ("ERROR", "CRITICAL")
        wanted = level in SHOWN_LEVELS or any(info in text for info in SHOWN_INFO)
        if not wanted or any(noise in text for noise in NOISE):
            self._limit = 0
            return []
        self._limit = FAILURE_LINES if self._error and not _RUN_ID.search(text) else 1
        self._shown_lines = 1
        return [text]

    def _cut_off(self) -> list[str]:
        # Only a failure's record is cut short with a word; any other shows its line alone.
        if self._limit <= 1 or self._cut:
            return []
        self._cut = True
        return [f"  ... (the rest in {self.log_name})"]


class Console:
    """Where `headwater dev` writes: every line of its children to the full log (without terminal
    colours), and what a person needs to the console. Thread-safe: the children's output and
    the run lines come from different threads."""

    def __init__(self, log: TextIO, stream: TextIO | None = None, log_name: str = "") -> None:
        self._log = log
        self._stream = stream or sys.stdout
        self._filter = ConsoleFilter(log_name or getattr(log, "name", "the full log"))
        self._lock = threading.Lock()

    def child_line(self, line: str, quiet: bool = False) -> None:
        """A line of `dagster dev`'s output: to the log, and through the filter unless `quiet`
        (while stopping, when the processes' farewells are for the log only)."""
        with self._lock:
            self._log.write(plain(line) + "\n")
            self._log.flush()
            shown = self._filter.feed(line)
            if not quiet:
                self._show(shown)

    def say(self, line: str) -> None:
        """A line of `headwater dev`'s own: to the log and the console."""
        with self._lock:
            self._log.write(line + "\n")
            self._log.flush()
            self._show([line])

    def _show(self, lines: list[str]) -> None:
        try:
            for line in lines:
                self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # the terminal closed (SIGHUP): the log still has it
            pass
