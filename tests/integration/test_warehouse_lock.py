"""The warehouse file held by another process (issue 13, case 6b: an analyst's dbt held it and a
run failed at once, naming only the step): `Warehouse.connect` waits for the lock with backoff,
and when it gives up it names the process that holds it and the file."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from headwater_core.resources import Warehouse, WarehouseBusy
from tests.processes import stop_process_group

# Holds the file open for argv[2] seconds, then exits.
HOLDER = (
    "import sys, time, duckdb\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


@contextmanager
def held(path: Path, seconds: float) -> Iterator[subprocess.Popen]:
    """A second process holding the DuckDB file `path` for `seconds`, stopped in any case."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        stop_process_group(holder)
        holder.stdout.close()


def test_a_busy_warehouse_fails_after_its_timeout_naming_the_holder_and_the_file(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    warehouse = Warehouse(path=str(path), lock_timeout_seconds=2)
    with held(path, 600) as holder:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy) as busy:
            with warehouse.connect():
                pass
        elapsed = time.monotonic() - started
    message = str(busy.value)
    assert 2 <= elapsed < 15
    assert f"PID {holder.pid}" in message
    assert "import sys, time, duckdb" in message  # the holder's command line, from /proc
    assert str(path) in message
    assert "lock_timeout_seconds" in message


def test_a_warehouse_released_during_the_wait_connects(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    warehouse = Warehouse(path=str(path), lock_timeout_seconds=60)
    with held(path, 2) as holder:
        started = time.monotonic()
        with warehouse.connect() as con:
            con.execute("create table t as select 1 as x")
            elapsed = time.monotonic() - started
        assert holder.poll() is not None  # it had exited: the connection waited for it
    assert 1 <= elapsed < 30
    with warehouse.connect(read_only=True) as con:
        assert con.execute("select x from t").fetchall() == [(1,)]
