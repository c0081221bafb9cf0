"""headwater_core/attached.py: warehouse files attached to kept in-memory DuckDB databases. What
closing a file used to guarantee must hold after the last user detaches it: the rows are in the
file and another process can take its lock; and a connection must read as one from
`duckdb.connect(path)` did."""

import subprocess
import sys

import duckdb
import pytest

from headwater_core.attached import KEPT_IDLE, AttachedFiles, second_connection


def _other_process(path, sql: str) -> str:
    """`sql` run on the file from another process, read-write: its first row, or the error."""
    code = (
        "import duckdb, sys\n"
        f"con = duckdb.connect({str(path)!r})\n"
        f"print(con.execute({sql!r}).fetchone()[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def test_a_file_is_its_connections_default_database_and_is_released_by_its_last_user(tmp_path):
    files, path = AttachedFiles(), tmp_path / "warehouse.duckdb"
    first = files.open(path, read_only=False)
    first.execute("create schema marts")
    first.execute("create table marts.facts as select range as id from range(1000)")
    assert first.execute("select current_database()").fetchone() == ("warehouse",)

    second = files.open(path, read_only=True)  # a reader while the writer is open: shared
    assert second.execute("select count(*) from marts.facts").fetchone() == (1000,)
    assert files.attached() == {str(path): 2}
    # while attached, the file is this process's: another one cannot take its lock
    assert "Could not set lock" in _other_process(path, "select 1")

    files.close(path, second)
    assert files.attached() == {str(path): 1}
    files.close(path, first)
    assert files.attached() == {}
    # detached: the rows are in the file and the lock is free, as after `close`
    assert _other_process(path, "select count(*) from marts.facts") == "1000"


def test_a_second_connection_reads_the_same_default_database(tmp_path):
    files, path = AttachedFiles(), tmp_path / "warehouse.duckdb"
    con = files.open(path, read_only=False)
    con.execute("create table t as select 42 as answer")
    reader = second_connection(con)
    assert reader.execute("select answer from t").fetchone() == (42,)
    # a plain cursor starts in the in-memory database the file is attached to
    with pytest.raises(duckdb.CatalogException):
        con.cursor().execute("select answer from t")
    reader.close()
    files.close(path, con)


def test_a_file_open_read_only_is_not_written_until_its_readers_leave(tmp_path):
    files, path = AttachedFiles(), tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    reader = files.open(path, read_only=True)
    with pytest.raises(duckdb.ConnectionException, match="read-only"):
        files.open(path, read_only=False)
    with pytest.raises(duckdb.Error, match="read-only|read only"):
        reader.execute("create table t (a int)")
    files.close(path, reader)
    writer = files.open(path, read_only=False)
    writer.execute("create table t (a int)")
    files.close(path, writer)


def test_a_lock_held_elsewhere_is_duckdbs_error_and_leaves_nothing_open(tmp_path):
    files, path = AttachedFiles(), tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys\ncon = duckdb.connect({str(path)!r})\nprint('held', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.IOException, match="Could not set lock"):
            files.open(path, read_only=False)
        assert files.attached() == {}
    finally:
        holder.communicate("\n", timeout=30)
    con = files.open(path, read_only=False)  # once the holder is gone
    files.close(path, con)


def test_idle_databases_are_bounded(tmp_path):
    files = AttachedFiles()
    for n in range(KEPT_IDLE + 3):
        path = tmp_path / f"w{n}.duckdb"
        files.close(path, files.open(path, read_only=False))
    assert len(files._files) == KEPT_IDLE
    assert files.attached() == {}


def test_the_scratch_database_is_kept_and_holds_no_file(tmp_path):
    files = AttachedFiles()
    first, second = files.scratch(), files.scratch()
    first.execute("create table kept as select 1 as a")
    assert second.execute("select a from kept").fetchone() == (1,)
    assert first.execute("select current_database()").fetchone() == ("memory",)
    assert files.attached() == {}
