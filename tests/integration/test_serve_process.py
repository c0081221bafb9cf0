"""`headwater serve` as a real process, followed through a promotion and a rollback while a
client sends requests without pause: the version served changes each time, no request fails,
every answer is logged (and the challenger's shadow beside it) once the process stops on
SIGTERM. The process is stopped even when the test fails (tests/processes.py)."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ml_assets.models.registry import move_champion, rollback
from ml_assets.models.spec import spec_from_yml
from ml_assets.models.tracking import MlflowTracking
from ml_assets.serving.prediction_log import read_day
from tests.processes import stop_process_group
from tests.serve_world import (
    batch_scores,
    free_service_port,
    register,
    request_rows,
    training_table,
    write_spec,
)

BIN = Path(sys.executable).parent
START_TIMEOUT = 300  # a cold start imports MLflow and Dagster on a busy machine
SWITCH_TIMEOUT = 120


class Client(threading.Thread):
    """Sends one row after another over a keep-alive connection; records each answer."""

    def __init__(self, url: str, row: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.row = url, row
        self.answers: list[tuple[int, str | None, float | None]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                try:
                    r = http.post(self.url, json={"row": self.row})
                    body = r.json()
                    score = body["predictions"][0]["score"] if r.status_code == 200 else None
                    self.answers.append((r.status_code, body.get("version"), score))
                except Exception as e:  # a dropped connection is a failed request
                    self.answers.append((-1, repr(e), None))

    def served(self) -> set[str]:
        return {v for code, v, _ in self.answers[-5:] if code == 200}


def _wait(condition, what: str, service: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.poll() is None, f"headwater serve exited:\n{log.read_text()[-3000:]}"
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout} s:\n{log.read_text()[-3000:]}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


# slow tier: two minutes, most of it the service's cold start and two registrations
@pytest.mark.slow
def test_promotion_and_rollback_change_the_version_served_with_no_failed_request(tmp_path):
    specs = write_spec(tmp_path / "specs")
    spec = spec_from_yml(specs / "tiny.yml")
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    name, table = spec.registered_model_name, training_table()
    tracking.client()  # the store's tables, made before the service reads it
    port, log_dir, log = free_service_port(), tmp_path / "log", tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    command = [
        str(BIN / "headwater"), "serve", "--port", str(port), "--poll-seconds", "0.3",
        "--tracking-uri", tracking.resolved_uri(), "--model-specs", str(specs),
        "--log-dir", str(log_dir), "--flush-seconds", "0.5",
    ]  # fmt: skip
    env = {"HEADWATER_HOME": str(tmp_path / "state"), "PATH": str(BIN)}
    with log.open("w") as out:
        service = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    client, started, phases = None, time.monotonic(), {}
    try:
        _wait(lambda: _answers(f"{base}/health"), "/health", service, log, START_TIMEOUT)
        phases["health"] = time.monotonic() - started
        row = request_rows(table, 1)[0]
        before = httpx.post(f"{base}/v1/models/tiny/predict", json={"row": row})
        assert before.status_code == 503 and before.json()["error"] == "no_champion"

        first = register(tracking, spec, table, 1, "run00001")
        move_champion(tracking, name, first, "promoted", "first champion")
        _wait(lambda: _answers(f"{base}/ready"), "the first champion", service, log, SWITCH_TIMEOUT)
        phases["first champion"] = time.monotonic() - started
        client = Client(f"{base}/v1/models/tiny/predict", row)
        client.start()
        second = register(tracking, spec, table, 7, "run00007")  # the challenger, shadowed
        phases["second registered"] = time.monotonic() - started
        time.sleep(1.5)
        move_champion(tracking, name, second, "promoted", "better")
        _wait(lambda: client.served() == {second}, "the promotion", service, log, SWITCH_TIMEOUT)
        rollback(tracking, name, first, "test rollback")
        _wait(lambda: client.served() == {first}, "the rollback", service, log, SWITCH_TIMEOUT)
        phases["rolled back"] = time.monotonic() - started
        time.sleep(0.5)
    finally:
        if client is not None:
            client.stop.set()
            client.join(timeout=60)
        left = stop_process_group(service, timeout=60)
    # uvicorn re-raises the stop signal once it has shut down cleanly
    assert service.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert not left, f"had to be killed: {left}"
    print("serve process test, phases:", phases)

    failed = [a for a in client.answers if a[0] != 200]
    assert not failed, f"{len(failed)} of {len(client.answers)} requests failed: {failed[:5]}"
    versions = [v for _, v, _ in client.answers]
    assert [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]] == [
        first,
        second,
        first,
    ]
    expected = {v: batch_scores(tracking, spec, v, table, 1)[0] for v in (first, second)}
    for _, version, score in client.answers:
        assert score == pytest.approx(expected[version], abs=1e-12)

    # flushed on SIGTERM: every answer logged once, as the champion; the challenger shadowed
    logged = read_day(log_dir, "tiny", table.column("_event_date")[0].as_py()).to_pylist()
    champion = [r for r in logged if r["role"] == "champion"]
    assert len(champion) == len(client.answers)  # the 503 before a champion is not logged
    shadow = [r for r in logged if r["role"] == "shadow"]
    assert shadow and {r["model_version"] for r in shadow} == {second}
    print(f"serve process test: {len(client.answers)} requests, 0 failed")
