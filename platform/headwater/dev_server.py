"""`headwater dev`'s processes: `dagster dev` (UI, daemon, code servers), the monitoring reports'
HTTP server, the MLflow UI on the embedded store, `headwater serve` (every model's champion over
HTTP, 503 until there is one), and the console that shows what a person needs.

Every port is checked before anything starts or the demo data is generated: a port in use is
one line naming the option that changes it. Every line of `dagster dev` and what runs under it
goes to `<state>/logs/dev.log`, the MLflow UI's to `<state>/logs/mlflow.log`, the model service's
to `<state>/logs/serve.log`. A stop signal (Ctrl-C, SIGTERM, SIGHUP) goes to `dagster dev`, the
MLflow UI and the service, and `headwater dev` returns once `dagster dev` has stopped, with the
others stopped too.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from headwater.console import Console
from headwater.environment import WORKSPACE
from headwater.forwarding import forwarding_stop_signals, run_piped, stop_group
from headwater.mlflow_ui import UI_URL_ENV, MlflowUi, claim_port, embedded_store, start_mlflow_ui
from headwater.report_server import report_url, reports_dir, start_report_server
from headwater.run_lines import RunWatcher

# The interpreter's warnings filter for the children: `dagster dev` announces at each start
# that it is superseded by `dg dev`. Dagster's BetaWarning and PreviewWarning cannot be named
# here (PYTHONWARNINGS is read before site-packages can be imported: "Invalid -W option
# ignored: invalid module name"); the console filter drops them (headwater/console.py).
DEV_WARNINGS_FILTER = "ignore:Function `dev_command` is superseded"
# How long the MLflow UI may take to answer: its first start creates the store's tables.
MLFLOW_UI_START_SECONDS = 300.0


@dataclass(frozen=True)
class DevConfig:
    """`headwater dev`'s options."""

    state: Path
    host: str
    port: int
    reports_port: int
    mlflow_port: int
    serve_port: int | None = None  # the model service's port; None: not started

    @property
    def logs(self) -> Path:
        return self.state / "logs"


def serve(config: DevConfig, tracking_uri: str, prepare: Callable[[], None]) -> int:
    """Check the ports, `prepare()` (the demo data, the dbt manifest), then run everything until
    a stop signal; returns `dagster dev`'s exit code."""
    mlflow_ui = _claim_ports(config, tracking_uri)
    config = _claim_serve_port(config)
    try:
        reports, reports_url = start_report_server(reports_dir(), config.host, config.reports_port)
    except OSError as e:
        raise SystemExit(_port_taken("the reports", config.host, config.reports_port, e)) from e
    try:
        prepare()
        _make_instance_storage()
        if mlflow_ui is not None and config.serve_port is not None:
            _make_mlflow_store(tracking_uri)
        # The daemon, the code servers and the runs they launch inherit these, so that an
        # asset's metadata links to its report and to its MLflow run.
        os.environ["HEADWATER_REPORTS_URL"] = reports_url
        if mlflow_ui is not None:
            os.environ[UI_URL_ENV] = mlflow_ui.url
        config.logs.mkdir(parents=True, exist_ok=True)
        with (config.logs / "dev.log").open("a") as log:
            console = Console(log)
            mlflow_at = mlflow_ui.url if mlflow_ui else f"{tracking_uri} (not served here)"
            served = (
                f"; models served on http://{config.host}:{config.serve_port}"
                if config.serve_port is not None
                else ""
            )
            console.say(
                f"headwater: state in {config.state}; Dagster UI on "
                f"http://{config.host}:{config.port}; MLflow UI on {mlflow_at}; reports on "
                f"{reports_url}{served}; full log in {log.name}"
            )
            return _run(config, mlflow_ui, console)
    finally:
        reports.shutdown()
        reports.server_close()


def _make_instance_storage() -> None:
    """Create a new instance's storage here, once. Otherwise `dagster dev`'s processes (the
    webserver, the daemon, the code servers) and the run watcher create it together, and
    SQLite's alembic table can end with two heads ("more than one head present"), which every
    one of them then refuses."""
    import dagster as dg

    with dg.DagsterInstance.get():
        pass


def _make_mlflow_store(tracking_uri: str) -> None:
    """Create the embedded MLflow store's tables here, once. Otherwise the MLflow UI and the
    model service (whose first registry poll opens the store) create them together, and one of
    them fails on "table ... already exists"."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri).search_experiments(max_results=1)


def _claim_ports(config: DevConfig, tracking_uri: str) -> MlflowUi | None:
    """Refuse a port in use before anything starts; the MLflow UI to serve, if any."""
    try:
        claim_port(config.host, config.port)
    except OSError as e:
        raise SystemExit(_port_taken("the Dagster UI", config.host, config.port, e)) from e
    store = embedded_store(tracking_uri)
    if store is None:  # MLFLOW_TRACKING_URI names a server: its links are its own
        return None
    try:
        port = claim_port(config.host, config.mlflow_port)
    except OSError as e:
        # Refused rather than run without the UI: the links would name whatever holds the port.
        raise SystemExit(_port_taken("the MLflow UI", config.host, config.mlflow_port, e)) from e
    return MlflowUi(
        store=store[0],
        artifacts=store[1],
        host=config.host,
        port=port,
        log=config.logs / "mlflow.log",
    )


def _claim_serve_port(config: DevConfig) -> DevConfig:
    """The config with the model service's port claimed (0 asks for any free one)."""
    if config.serve_port is None:
        return config
    try:
        port = claim_port(config.host, config.serve_port)
    except OSError as e:
        raise SystemExit(_port_taken("the models", config.host, config.serve_port, e)) from e
    return dataclasses.replace(config, serve_port=port)


def _port_taken(what: str, host: str, port: int, error: OSError) -> str:
    option = {
        "the Dagster UI": "--port",
        "the reports": "--reports-port",
        "the models": "--serve-port",
    }.get(what)
    return (
        f"headwater: cannot serve {what} on {host}:{port} ({error.strerror or error}); "
        f"pass another {option or '--mlflow-port'}"
    )


def _run(config: DevConfig, mlflow_ui: MlflowUi | None, console: Console) -> int:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    # Lines through a pipe arrive as they are written, not a buffer at a time.
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), DEV_WARNINGS_FILTER]))
    command = [
        str(bin_dir / "dagster"),
        "dev",
        "-w",
        str(WORKSPACE),
        "-h",
        config.host,
        "-p",
        str(config.port),
        # Dagster's own defaults, said out loud: the services at INFO and the code servers at
        # WARNING into the full log. The runs' console logger stays at DEBUG (an instance-wide
        # `python_logs.python_log_level` would also drop `context.log.debug` from the runs'
        # event logs); the console filter shows what a person needs.
        "--log-level",
        "info",
        "--code-server-log-level",
        "warning",
    ]
    runs = RunWatcher(console.say, report_url(config.host, config.port))
    with forwarding_stop_signals() as stops:
        mlflow = None
        if mlflow_ui is not None:
            mlflow = stops.add(start_mlflow_ui(mlflow_ui, bin_dir))
            _watch_mlflow_ui(mlflow, mlflow_ui, console, stops.received)
        service = None
        if config.serve_port is not None:
            service = stops.add(_start_service(config, bin_dir))
        runs.start()
        try:
            return run_piped(
                command, stops, lambda line: console.child_line(line, bool(stops.received)), env
            )
        finally:
            runs.stop()
            for child in (service, mlflow):
                if child is not None:
                    stop_group(child, stops)
            console.say("headwater: stopped")


def _start_service(config: DevConfig, bin_dir: Path):
    """`headwater serve` in a process group of its own, output to `<state>/logs/serve.log`."""
    import subprocess

    command = [
        str(bin_dir / "headwater"),
        *("serve", "--host", config.host, "--port", str(config.serve_port)),
    ]
    config.logs.mkdir(parents=True, exist_ok=True)
    with (config.logs / "serve.log").open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def _watch_mlflow_ui(process, ui: MlflowUi, console: Console, stopping: list[int]) -> None:
    """Say, from a thread, when the MLflow UI answers, or that it exited unasked (naming its
    log); `stopping` is the stop signals received so far."""
    log = ui.log

    def watch() -> None:
        deadline = time.monotonic() + MLFLOW_UI_START_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                if not stopping:
                    console.say(
                        f"headwater: the MLflow UI exited (code {process.returncode}); see {log}"
                    )
                return
            try:
                with urllib.request.urlopen(f"{ui.url}/health", timeout=2) as response:
                    if response.status == 200:
                        console.say(f"headwater: MLflow UI ready on {ui.url}")
                        return
            except OSError:
                pass
            time.sleep(1)
        console.say(f"headwater: the MLflow UI does not answer on {ui.url}; see {log}")

    threading.Thread(target=watch, name="headwater-mlflow-ui", daemon=True).start()
