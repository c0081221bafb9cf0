"""The MLflow UI `headwater dev` serves over the embedded store, so that a model asset's
`mlflow_run` link opens.

`mlflow server` on the SQLite store and artifact folder the platform's runs write to
(`MlflowTracking.resolved_uri`): runs keep writing to the file, the server only reads what the
UI shows. One setting, `--mlflow-port`, gives both the port the server binds and the address the
links name ($HEADWATER_MLFLOW_UI_URL, inherited by the daemon, the code servers and their runs).
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from headwater.report_server import report_url

UI_URL_ENV = "HEADWATER_MLFLOW_UI_URL"


@dataclass(frozen=True)
class MlflowUi:
    """What the UI serves and where."""

    store: str  # the backend store URI: sqlite:///<state>/mlflow/mlflow.db
    artifacts: Path  # the artifact folder beside it, for experiments the UI itself creates
    host: str
    port: int
    log: Path  # where its output goes

    @property
    def url(self) -> str:
        return report_url(self.host, self.port)

    def command(self, bin_dir: Path) -> list[str]:
        return [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            self.store,
            "--default-artifact-root",
            self.artifacts.as_uri(),
            "--host",
            self.host,
            "--port",
            str(self.port),
            # One worker: a developer's UI, on a machine that also runs Dagster and its runs.
            "--workers",
            "1",
        ]


def embedded_store(tracking_uri: str) -> tuple[str, Path] | None:
    """(store, artifact folder) of the embedded SQLite store; None for a tracking server or
    any other store named by MLFLOW_TRACKING_URI, which is not `headwater dev`'s to serve."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return tracking_uri, database.parent / "artifacts"


def claim_port(host: str, port: int) -> int:
    """`port` if nothing listens on `host`:`port`, or a free port for port 0. Raises OSError
    when it is taken: checked before anything starts, so that `headwater dev` refuses at once
    rather than after the demo data is generated."""
    with socket.socket() as probe:
        probe.bind((host, port))
        return probe.getsockname()[1]


def start_mlflow_ui(ui: MlflowUi, bin_dir: Path) -> subprocess.Popen:
    """`mlflow server` in a process group of its own (stopped as a whole), output to its log."""
    env = dict(os.environ)
    # MLflow 3's server also starts a job runner and seven queue consumers (about 400 MB) for
    # its GenAI jobs, which a UI over training runs never uses.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    ui.log.parent.mkdir(parents=True, exist_ok=True)
    ui.artifacts.mkdir(parents=True, exist_ok=True)
    with ui.log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            ui.command(bin_dir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
