"""`headwater stack` with PostgreSQL down (issue 13, case 6c): it checks the server before it
starts a process and says which host and port did not answer (it used to start everything and
report only "exited before webserver was ready: {'daemon': 1}")."""

import time

import pytest

from headwater.stack import PgSettings, StackConfig, run_stack
from headwater.stack_health import PostgresUnreachable, check_postgres
from tests.conftest import free_port


def test_a_closed_port_is_reported_with_its_host_and_port():
    port = free_port()
    with pytest.raises(PostgresUnreachable, match=f"PostgreSQL at 127.0.0.1:{port} "):
        check_postgres(PgSettings(port=port))


def test_the_stack_stops_before_starting_anything_when_postgres_is_down(tmp_path, capsys):
    port = free_port()
    started = time.monotonic()
    code = run_stack(StackConfig(state=tmp_path), PgSettings(port=port), create=True)
    assert code == 1
    assert time.monotonic() - started < 15
    out = capsys.readouterr().out
    assert f"PostgreSQL at 127.0.0.1:{port} is unreachable" in out
    assert "DAGSTER_PG_HOST" in out
    # a unit test that started a process would fail here (tests/process_hygiene.py)
