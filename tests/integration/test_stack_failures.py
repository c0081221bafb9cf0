"""`headwater stack` says why a process died (issue 13, case 6c): the message that a process
exited before the stack was ready carries the last lines of that process's log, where the
cause is (a daemon once exited on "connection refused" and the message said only
"{'daemon': 1}")."""

import sys

import pytest

from headwater.stack import start
from headwater.stack_health import wait_until
from tests.processes import stop_process_group

# What dagster-daemon prints when its PostgreSQL storage refuses the connection, then exits 1.
DIES = (
    "import sys, time\n"
    "print('2026-01-01 00:00:00 +0000 - dagster-daemon - INFO - starting', flush=True)\n"
    'print(\'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5999 '
    "failed: Connection refused', file=sys.stderr, flush=True)\n"
    "sys.exit(1)\n"
)
LIVES = "import time\ntime.sleep(600)\n"


def test_the_first_process_to_exit_is_named_with_the_end_of_its_log(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = {
        "mlflow": start("mlflow", [sys.executable, "-c", LIVES], {}, logs),
        "daemon": start("daemon", [sys.executable, "-c", DIES], {}, logs),
    }
    try:
        with pytest.raises(RuntimeError) as failed:
            wait_until(lambda: False, "webserver", processes, 60, logs)
    finally:
        for process in processes.values():
            stop_process_group(process, timeout=10)
    message = str(failed.value)
    assert "daemon exited with code 1 before webserver was ready" in message
    assert "Connection refused" in message
    assert str(logs / "daemon.log") in message
    assert "mlflow" not in message.split("\n")[0]
