"""Warehouse files opened by attaching them to an in-memory DuckDB database kept per file.

`duckdb.connect(path)` starts a new DuckDB database each time the file is not open already in
the process: about 12 ms here, most of it registering DuckDB's built-in functions, before the
file is read; closing it is 2-3 ms more. A day through the graph opens the warehouse 18 times
(each raw, dbt, scoring and drift step opens and closes it, so that another process can take
the file between steps): 0.3 s. Attaching the file to a database that stays (`ATTACH`) and
detaching it after use costs 2 ms, and releases the file exactly as closing does: DuckDB
checkpoints it and gives up its lock.

The file is attached under its stem, the name `duckdb.connect` gives it, so every query and
every relation name reads as before; each connection handed out is a cursor whose default
database is the file (`USE`). Users of one file in one process share one attachment, counted,
and the last to leave detaches it. A second connection to the same file (`con.cursor()`) is
taken with `second_connection(con)`, which keeps the file as its default database. No Dagster.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import duckdb

# In-memory databases kept without a file attached, for the files used last. Each holds
# DuckDB's worker threads; a test session uses hundreds of warehouse files.
KEPT_IDLE = 4


class AttachedFiles:
    """The process's in-memory databases and the file each one has attached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # file -> [database, read_only, users]; users 0: kept, nothing attached
        self._files: OrderedDict[str, list] = OrderedDict()
        self._scratch: tuple[int, duckdb.DuckDBPyConnection] | None = None

    def open(self, path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        """A connection whose default database is the file at `path`, attached if no other user
        of the process has it attached. Raises what `ATTACH` raises (an `IOException` while
        another process holds the file's lock)."""
        key = os.path.abspath(path)
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's databases are not its own
                self._files, self._pid = OrderedDict(), os.getpid()
            entry = self._files.get(key)
            if entry is None:
                entry = self._files[key] = [duckdb.connect(), read_only, 0]
            database, attached_read_only, users = entry
            if users and attached_read_only and not read_only:
                raise duckdb.ConnectionException(
                    f"{key} is open read-only in this process; it cannot be written until every "
                    "read-only connection to it is closed"
                )
            if not users:
                mode = " (read_only)" if read_only else ""
                database.execute(f"attach {_literal(key)} as {_name(path)}{mode}")
                entry[1] = read_only
            entry[2] += 1
            self._files.move_to_end(key)
            cursor = database.cursor()
        try:
            cursor.execute(f"use {_name(path)}")
        except BaseException:
            cursor.close()
            self.close(path)
            raise
        return cursor

    def close(self, path: Path, connection: duckdb.DuckDBPyConnection | None = None) -> None:
        """Close `connection` (from `open`); the file is detached when its last user leaves."""
        if connection is not None:
            connection.close()
        key = os.path.abspath(path)
        with self._lock:
            entry = self._files.get(key)
            if entry is None or entry[2] == 0:
                return
            entry[2] -= 1
            if entry[2] == 0:
                entry[0].execute(f"detach {_name(path)}")
                idle = [k for k, e in self._files.items() if e[2] == 0]
                for stale in idle[: max(0, len(idle) - KEPT_IDLE)]:
                    self._files.pop(stale)[0].close()

    def scratch(self) -> duckdb.DuckDBPyConnection:
        """A connection to an empty in-memory database kept for the process: for SQL that
        reads no file (checking a contract's expressions), without starting a database."""
        with self._lock:
            if self._pid != os.getpid():
                self._files, self._pid = OrderedDict(), os.getpid()
            if self._scratch is None or self._scratch[0] != self._pid:
                self._scratch = (self._pid, duckdb.connect())
            return self._scratch[1].cursor()

    def attached(self) -> dict[str, int]:
        """Each attached file and its users (for tests)."""
        with self._lock:
            return {k: e[2] for k, e in self._files.items() if e[2]}


def second_connection(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """`con.cursor()` (another connection to the same database, for a read while `con` writes)
    with `con`'s default database: a new cursor of an attached file's connection starts in the
    in-memory database it is attached to."""
    ((database,),) = con.execute("select current_database()").fetchall()
    cursor = con.cursor()
    cursor.execute(f"use {_quoted(database)}")
    return cursor


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _name(path: Path) -> str:
    return _quoted(Path(path).stem)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


FILES = AttachedFiles()
