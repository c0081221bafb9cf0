"""The first README command's server: `headwater dev` serves the UI on 127.0.0.1 with the daemon,
showing both code locations as one graph."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port

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


def test_headwater_dev_serves_the_graph_with_the_daemon(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "DAGSTER_"))}
    env["HEADWATER_HOME"] = str(tmp_path / "state")
    server = subprocess.Popen(
        [
            str(BIN / "headwater"),
            "dev",
            "--port",
            str(port),
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
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

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
    # the demo data was generated into the state folder, and the embedded instance config used
    assert list((tmp_path / "state" / "landing" / "transactions").iterdir())
    assert (tmp_path / "state" / "dagster_home" / "dagster.yaml").exists()
    assert f"127.0.0.1:{port}" in log
