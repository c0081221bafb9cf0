"""The platform's storage as Dagster resources: the warehouse file, which both code locations
read and write, and the landing folder the raw assets load from."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from headwater_core import compute
from headwater_core.attached import FILES
from headwater_core.config import default_duckdb_path, default_landing_dir

# DuckDB's words when another process holds the file, and how it names that process.
LOCK_ERROR = "Could not set lock on file"
LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseBusy(RuntimeError):
    """Another process held the warehouse file for longer than the resource waits."""


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file that holds the `raw` schema and every dbt layer.

    `path` empty means $HEADWATER_DUCKDB_PATH, else `<state>/warehouse.duckdb`, the same default
    dbt's profiles.yml uses, so Python and dbt always write one file.

    DuckDB lets one process write the file (and none read it meanwhile): the platform's own
    steps take turns through the `duckdb_warehouse` pool, but another process (an analyst's
    dbt, a notebook) may hold it. `connect` then waits, retrying with backoff, for up to
    `lock_timeout_seconds`, and fails naming the process that holds the file. It attaches the
    file to an in-memory database kept for it (`headwater_core.attached`) and detaches it after
    use, which releases the file as closing it did, in 2 ms instead of 15.

    Every connection, and dbt's, gets `threads` and `memory_limit` (`headwater_core.compute`:
    unset, $HEADWATER_DUCKDB_THREADS or $HEADWATER_THREADS or the cores available, and
    $HEADWATER_DUCKDB_MEMORY_LIMIT or 2GB), so DuckDB spills to disk rather than take the
    machine's memory (its own default is 80% of RAM). A deployment sets them with
    `Warehouse(memory_limit=dg.EnvVar("..."))` or the variables.
    """

    path: str = ""
    lock_timeout_seconds: float = 60.0
    """How long `connect` waits for another process's lock on the file."""
    lock_retry_seconds: float = 0.25
    """The first pause between tries; each next one doubles, up to 5 s."""
    threads: int = 0
    """DuckDB's threads; 0: $HEADWATER_DUCKDB_THREADS, else $HEADWATER_THREADS, else the cores."""
    memory_limit: str = ""
    """DuckDB's memory_limit ("2GB", "50%"); empty: $HEADWATER_DUCKDB_MEMORY_LIMIT, else 2GB."""

    def duckdb_settings(self) -> dict[str, str]:
        """The resolved settings as the variables dbt's profile reads."""
        return compute.duckdb_settings(self.threads, self.memory_limit)

    def resolved_path(self) -> Path:
        return Path(self.path) if self.path else default_duckdb_path()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.resolved_path()
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = connect_waiting(path, read_only, self.lock_timeout_seconds, self.lock_retry_seconds)
        try:
            compute.apply_duckdb_settings(con, self.threads, self.memory_limit)
            yield con
        finally:
            FILES.close(path, con)


def connect_waiting(
    path: Path, read_only: bool, timeout: float, first_pause: float
) -> duckdb.DuckDBPyConnection:
    """The file opened (attached, `headwater_core.attached`), tried again with backoff while
    another process holds its lock; after `timeout` seconds, WarehouseBusy naming the holder.
    Close it with `FILES.close(path, connection)`."""
    deadline = time.monotonic() + timeout
    pause = first_pause
    while True:
        try:
            return FILES.open(path, read_only)
        except duckdb.IOException as e:
            if LOCK_ERROR not in str(e):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise WarehouseBusy(busy_message(path, str(e), timeout)) from e
            time.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)


def busy_message(path: Path, error: str, timeout: float) -> str:
    """Who holds the file, as DuckDB names them (program and PID) and, if /proc lets us read it,
    their command line."""
    holder = LOCK_HOLDER.search(error)
    if holder is None:
        who = "another process"
    else:
        pid = holder["pid"]
        who = f"PID {pid} ({holder['exe']})"
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            who += f": {cmdline.decode(errors='replace').strip()}"
        except OSError:
            pass
    return (
        f"the warehouse {path} is locked by {who}; waited {timeout:g} s for it (the warehouse "
        "resource's lock_timeout_seconds). Stop that process or let it finish, then run again. "
        f"DuckDB: {error}"
    )


class LandingZone(dg.ConfigurableResource):
    """The folder source systems deliver their export files into.

    `path` empty means $HEADWATER_LANDING_DIR, else `<state>/landing`.
    """

    path: str = ""

    def resolved_path(self) -> Path:
        return Path(self.path) if self.path else default_landing_dir()
