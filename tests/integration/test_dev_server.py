"""The first README command's server: `headwater dev` serves the UI on 127.0.0.1 with the daemon,
showing both code locations as one graph, serves the monitoring reports over HTTP and the MLflow
UI on the embedded store (at the address the models' run links name), shows warnings and
failures on its console and everything in its full log, and leaves no process behind when
stopped."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import free_port
from tests.processes import session_processes, stop_process_group

BIN = Path(sys.executable).parent

QUERY = """
{
  assetNodes { assetKey { path } dependencyKeys { path } }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } }
}
"""


def _graphql(port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def _wait_for(url: str, server: subprocess.Popen, seconds: float) -> int | None:
    """The HTTP status `url` answers with once it answers, None if it never did in `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status
        except OSError:
            time.sleep(2)
    return None


def _check_mlflow_ui(daemon_env: dict[str, str], mlflow_port: int, server) -> None:
    """The MLflow UI answers on its port, shows a run logged to the embedded store, and the run
    link a model asset would carry starts with its address."""
    from ml_assets.models.tracking import MlflowTracking

    served = f"http://127.0.0.1:{mlflow_port}"
    # The first start creates the store's tables: on a busy 2-core machine, a minute or two.
    assert _wait_for(f"{served}/health", server, 300) == 200
    assert daemon_env["HEADWATER_MLFLOW_UI_URL"] == served
    tracking = MlflowTracking()  # the test's environment names the same state folder
    with tracking.start_run("dev_server_test", "a run", {}) as run:
        pass
    link = tracking.run_link(run.info.experiment_id, run.info.run_id)
    assert link == f"{served}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    api = f"{served}/ajax-api/2.0/mlflow/runs/get?run_id={run.info.run_id}"
    with urllib.request.urlopen(api, timeout=10) as response:
        assert json.load(response)["run"]["info"]["run_id"] == run.info.run_id


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.decode().split("=", 1) for e in raw.split(b"\0") if b"=" in e)


# How long the code servers may take to stop once `headwater dev` has exited. The landing
# sensor's first run is often still going at SIGTERM: a code server stops only once the runs it
# launched have (their workers get the same SIGTERM), then gives calls still in flight up to
# Dagster's grace period, 60 s (DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD), and 5 s more.
CODE_SERVER_STOP_SECONDS = 75


def _stop(server: subprocess.Popen) -> dict[int, str]:
    """SIGTERM to `headwater dev` alone, as `kill` would send it: it must pass it on to
    `dagster dev` (a process group of its own) and wait for it. Returns what was still running
    `CODE_SERVER_STOP_SECONDS` after it exited, killed so that no test after this one inherits
    it."""
    return stop_process_group(
        server, timeout=90, leader_only=True, rest_timeout=CODE_SERVER_STOP_SECONDS
    )


def _check_model_service(serve_port: int) -> None:
    """`headwater serve` runs beside the UI: healthy, and 503 with a clear body until the model
    has a champion (none is trained in this test)."""
    base = f"http://127.0.0.1:{serve_port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                assert response.status == 200
                break
        except OSError:
            assert time.monotonic() < deadline, "headwater serve never answered /health"
            time.sleep(1)
    try:
        urllib.request.urlopen(f"{base}/v1/models/fraud_classifier", timeout=10)
        raise AssertionError("a model without a champion was described")
    except urllib.error.HTTPError as e:
        assert e.code == 503
        assert "champion" in e.read().decode()


def test_headwater_dev_serves_the_graph_with_the_daemon(tmp_path, monkeypatch):
    port, reports_port, mlflow_port, serve_port = free_port(), free_port(), free_port(), free_port()
    # Nothing of another state: an MLflow store named by the environment would be the UI's
    # (`embedded_store`), not the state folder's that this test logs its run to.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEADWATER_", "DAGSTER_", "MLFLOW_"))
    }
    env["HEADWATER_HOME"] = str(tmp_path / "state")
    # A report as the monitoring assets write it, under the state folder's reports/.
    report = tmp_path / "state" / "reports" / "fraud_classifier" / "2025-01-03" / "drift.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html><body>drift report</body></html>")
    server = subprocess.Popen(
        [
            str(BIN / "headwater"),
            "dev",
            "--port",
            str(port),
            "--reports-port",
            str(reports_port),
            "--mlflow-port",
            str(mlflow_port),
            "--serve-port",
            str(serve_port),
            "--start-date",
            "2025-01-01",
            "--days",
            "3",
            "--transactions",
            "1500",
        ],
        env=env,
        stdout=(tmp_path / "dev.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        data = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                data = _graphql(port)
                keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
                daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
                if "features/transaction_features" in keys and all(
                    d["healthy"] for d in daemons if d["required"]
                ):
                    break
            except OSError:
                pass
            time.sleep(2)
        log = (tmp_path / "dev.log").read_text()
        assert data is not None, log[-3000:]

        # The report, one click away: over HTTP from the report server.
        url = f"http://127.0.0.1:{reports_port}/fraud_classifier/2025-01-03/drift.html"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.read().decode() == report.read_text()
        # ... and its address is in the environment the daemon launches runs with.
        started = session_processes(server.pid)
        daemons = [pid for pid, cmd in started.items() if "dagster._daemon" in cmd]
        assert daemons, started
        daemon_env = _environ(daemons[0])
        assert daemon_env["HEADWATER_REPORTS_URL"] == f"http://127.0.0.1:{reports_port}"
        monkeypatch.setenv("HEADWATER_HOME", env["HEADWATER_HOME"])
        monkeypatch.setenv("HEADWATER_MLFLOW_UI_URL", daemon_env["HEADWATER_MLFLOW_UI_URL"])
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        _check_mlflow_ui(daemon_env, mlflow_port, server)
        _check_model_service(serve_port)
    finally:
        left = _stop(server)
    assert not left, f"processes left behind: {left}"
    assert server.returncode == 0, (tmp_path / "dev.log").read_text()[-3000:]

    keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
    assert {
        "raw/transactions",
        "staging/stg_payments__transactions",
        "marts/fct_transactions",
        "features/transaction_features",
    } <= keys
    features = next(n for n in data["assetNodes"] if n["assetKey"]["path"][0] == "features")
    assert ["marts", "fct_transactions"] in [d["path"] for d in features["dependencyKeys"]]
    daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    assert {"SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR"} <= {d["daemonType"] for d in daemons}
    assert all(d["healthy"] for d in daemons if d["required"]), daemons
    # the demo data was generated into the state folder and recorded for the demo feed, and the
    # embedded instance config used
    assert list((tmp_path / "state" / "landing" / "transactions").iterdir())
    record = json.loads((tmp_path / "state" / "landing" / ".headwater_demo.json").read_text())
    assert (record["start_date"], record["days"], record["transactions"]) == ("2025-01-01", 3, 1500)
    assert (tmp_path / "state" / "dagster_home" / "dagster.yaml").exists()
    assert f"127.0.0.1:{port}" in log and f"reports on http://127.0.0.1:{reports_port}" in log
    assert f"MLflow UI on http://127.0.0.1:{mlflow_port}" in log

    # The console shows what a person needs; the full log in the state folder has everything.
    console = (tmp_path / "dev.log").read_text()
    full = (tmp_path / "state" / "logs" / "dev.log").read_text()
    assert "BetaWarning" in full and "BetaWarning" not in console
    assert " - INFO - Launching Dagster services" in full
    chatter = [
        line
        for line in console.splitlines()
        if " - DEBUG - " in line or (" - INFO - " in line and "Serving dagster" not in line)
    ]
    assert not chatter, chatter
    assert console.rstrip().endswith("headwater: stopped")
