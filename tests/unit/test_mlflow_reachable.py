"""MLflow down fails fast (issue 13, case 6a): the tracking resource checks the server's health
with a few bounded tries before its client is used (a model once trained, then retried for
minutes), and the error names the tracking URI."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from ml_assets.models.tracking import MlflowTracking, MlflowUnreachable, check_reachable

# Nothing listens on the discard port of the loopback: connections are refused at once.
UNREACHABLE = "http://127.0.0.1:9"


def test_an_unreachable_tracking_server_fails_within_seconds_naming_its_uri():
    started = time.monotonic()
    with pytest.raises(MlflowUnreachable, match=UNREACHABLE):
        check_reachable(UNREACHABLE)
    assert time.monotonic() - started < 10


def test_a_step_logging_to_an_unreachable_tracking_server_fails_within_seconds():
    @dg.asset
    def model(mlflow_tracking: MlflowTracking) -> None:
        with mlflow_tracking.start_run("reachability", "run", {}):
            pass

    started = time.monotonic()
    result = dg.materialize(
        [model],
        resources={"mlflow_tracking": MlflowTracking(tracking_uri=UNREACHABLE)},
        raise_on_error=False,
    )
    elapsed = time.monotonic() - started
    assert not result.success
    assert elapsed < 30
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert f"MLflow tracking server {UNREACHABLE} is unreachable" in str(
        failure.step_failure_data.error
    )


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_server_that_answers_its_health_check_passes(health_server: str):
    check_reachable(health_server)
    check_reachable(health_server + "/")


def test_the_embedded_store_needs_no_server(tmp_path):
    check_reachable(f"sqlite:///{tmp_path / 'mlflow.db'}")
