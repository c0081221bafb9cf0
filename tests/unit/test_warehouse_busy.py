"""How a busy warehouse is reported (issue 13, case 6b): DuckDB's lock error names the holder's
program and PID; the message adds its command line from /proc and the resource's setting."""

import os
from pathlib import Path

from headwater_core.resources import busy_message

DUCKDB_SAYS = (
    'IO Error: Could not set lock on file "/data/warehouse.duckdb": Conflicting lock is held in '
    "/usr/bin/python3.11 (PID {pid}). See also https://duckdb.org/docs/current/connect/concurrency"
)


def test_the_message_names_the_holder_its_command_line_and_the_file():
    pid = os.getpid()
    message = busy_message(Path("/data/warehouse.duckdb"), DUCKDB_SAYS.format(pid=pid), 30)
    assert f"PID {pid} (/usr/bin/python3.11)" in message
    assert "pytest" in message  # this process's command line
    assert "/data/warehouse.duckdb" in message
    assert "waited 30 s" in message and "lock_timeout_seconds" in message


def test_a_holder_that_has_exited_is_still_named_by_its_pid():
    # PIDs do not reach 2**22 on Linux: nothing to read in /proc
    message = busy_message(Path("/w.duckdb"), DUCKDB_SAYS.format(pid=2**22 + 1), 5)
    assert f"PID {2**22 + 1} (/usr/bin/python3.11); waited 5 s" in message
