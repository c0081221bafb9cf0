"""Whether the parts of `headwater stack` answer, and why one did not: PostgreSQL before
anything starts, then each process until it is ready, with the end of the log of the first one
that exited (its cause is there: the stack's own message could only name it)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.stack import PgSettings

# Lines of a dead process's log quoted in the stack's message.
LOG_TAIL_LINES = 15


class PostgresUnreachable(RuntimeError):
    """Nothing accepts connections at the PostgreSQL host and port."""


def check_postgres(pg: PgSettings, timeout: float = 5.0) -> None:
    """Raise PostgresUnreachable, naming host:port, unless the server accepts a TCP connection
    within `timeout` seconds (Dagster's daemon and MLflow both need it; without it they exit
    one after the other)."""
    try:
        with socket.create_connection((pg.host, pg.port), timeout=timeout):
            return
    except OSError as e:
        cause = e.strerror or str(e) or type(e).__name__
    raise PostgresUnreachable(
        f"PostgreSQL at {pg.host}:{pg.port} is unreachable ({cause}): start it, or point "
        "DAGSTER_PG_HOST and DAGSTER_PG_PORT at the server that holds the stack's databases"
    )


def log_path(logs: Path, name: str) -> Path:
    """Where a process of the stack logs (stdout and stderr)."""
    return logs / f"{name.replace(':', '-')}.log"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log, or why there are none."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(the log is empty)"


def http_ok(url: str) -> bool:
    """Whether `url` answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def code_server_ok(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the code server answers SERVING to the standard gRPC health check, the protocol
    `dagster api grpc-health-check` (the containers' and Helm's probe) speaks."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=5
            )
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


def wait_until(
    ready, what: str, processes: dict[str, subprocess.Popen], timeout: float, logs: Path
) -> None:
    """Poll `ready` each second; RuntimeError when a process exits first (naming the first of
    them in start order, with the end of its log) or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        exited = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
        if exited:
            name, code = next(iter(exited.items()))
            others = {n: c for n, c in exited.items() if n != name}
            path = log_path(logs, name)
            raise RuntimeError(
                f"{name} exited with code {code} before {what} was ready"
                + (f" (also exited: {others})" if others else "")
                + f"; the end of {path}:\n{log_tail(path)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(1)
