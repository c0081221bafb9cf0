"""`headwater stack`: the production profile's processes on one machine, against PostgreSQL.

The same processes the containers run (deploy/compose.yaml), started natively: an MLflow
tracking server with a PostgreSQL backend store, one `dagster code-server start` per code
location, `headwater serve` (the champions over HTTP), `dagster-daemon run` and
`dagster-webserver`, the last two loading
deploy/workspace.yaml, which points at the code servers. The Dagster instance is
deploy/dagster.yaml (PostgreSQL storage, run queue, DuckDB pool), copied into $DAGSTER_HOME.

Connection settings come from the environment only (`PgSettings.from_env`); the defaults are
those of a local server with trust auth. A password is passed to the children as an environment
variable (DAGSTER_PG_PASSWORD, PGPASSWORD), never on a command line, where `ps` would show it.
The command runs in the foreground and stops every process it started on SIGINT or SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from headwater.stack_health import (
    PostgresUnreachable,
    check_postgres,
    code_server_ok,
    http_ok,
    log_path,
    log_tail,
    wait_until,
)
from headwater_core.config import PROJECT_ROOT

DEPLOY_DIR = PROJECT_ROOT / "deploy"
PRODUCTION_INSTANCE_CONFIG = DEPLOY_DIR / "dagster.yaml"
PRODUCTION_WORKSPACE = DEPLOY_DIR / "workspace.yaml"

# (location name, module) of each code server, in start order.
CODE_LOCATIONS = (
    ("data_platform", "data_platform.definitions"),
    ("ml_assets", "ml_assets.definitions"),
)
# The workspace's variables naming each location's code server (deploy/workspace.yaml).
CODE_SERVER_ENV = {
    "data_platform": ("HEADWATER_DATA_CODE_HOST", "HEADWATER_DATA_CODE_PORT"),
    "ml_assets": ("HEADWATER_ML_CODE_HOST", "HEADWATER_ML_CODE_PORT"),
}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class PgSettings:
    """Where the two databases live: Dagster's instance and MLflow's backend store."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    dagster_db: str = "headwater_dagster"
    mlflow_db: str = "headwater_mlflow"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PgSettings:
        """The DAGSTER_PG_* and MLFLOW_PG_DB variables, each defaulting to a local server."""
        d = cls()
        return cls(
            host=env.get("DAGSTER_PG_HOST") or d.host,
            port=int(env.get("DAGSTER_PG_PORT") or d.port),
            user=env.get("DAGSTER_PG_USER") or d.user,
            password=env.get("DAGSTER_PG_PASSWORD", d.password),
            dagster_db=env.get("DAGSTER_PG_DB") or d.dagster_db,
            mlflow_db=env.get("MLFLOW_PG_DB") or d.mlflow_db,
        )

    def mlflow_backend_uri(self) -> str:
        """MLflow's backend store, without the password (psycopg2 reads PGPASSWORD)."""
        # The driver named: MLflow would otherwise pick psycopg 3, which is not installed
        # (dagster-postgres brings psycopg2).
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.mlflow_db}"

    def environment(self) -> dict[str, str]:
        """What deploy/dagster.yaml and libpq read."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.dagster_db,
            "PGPASSWORD": self.password,
        }


@dataclass(frozen=True)
class StackConfig:
    """Addresses and folders of one native stack."""

    state: Path
    host: str = "127.0.0.1"
    port: int = 3000
    read_only: bool = False
    mlflow_port: int = 5000
    data_code_port: int = 4000
    ml_code_port: int = 4001
    serve_port: int = 8000

    @property
    def dagster_home(self) -> Path:
        return self.state / "dagster_home_production"

    @property
    def mlflow_artifacts(self) -> Path:
        """The artifact root the MLflow server owns (clients upload through the server)."""
        return self.state / "mlflow_server" / "artifacts"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def webserver_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def webserver_probe_url(self) -> str:
        """Where this machine reaches the webserver (a wildcard bind answers on the loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/server_info"

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def code_port(self, location: str) -> int:
        return self.data_code_port if location == "data_platform" else self.ml_code_port


def stack_environment(
    config: StackConfig, pg: PgSettings, base: Mapping[str, str]
) -> dict[str, str]:
    """The environment of every process of the stack (and of the runs the code servers launch)."""
    env = dict(base)
    env.update(pg.environment())
    env["DAGSTER_HOME"] = str(config.dagster_home)
    env["HEADWATER_HOME"] = str(config.state)
    env.setdefault("HEADWATER_DUCKDB_PATH", str(config.state / "warehouse.duckdb"))
    env.setdefault("HEADWATER_LANDING_DIR", str(config.state / "landing"))
    # The platform's MlflowTracking resource reads it when a run needs MLflow.
    env["MLFLOW_TRACKING_URI"] = config.mlflow_uri
    for location, (host_var, port_var) in CODE_SERVER_ENV.items():
        env[host_var] = "127.0.0.1"
        env[port_var] = str(config.code_port(location))
    return env


def stack_commands(config: StackConfig, pg: PgSettings, bin_dir: Path) -> dict[str, list[str]]:
    """Each process's command line, in start order (servers before their clients)."""
    commands = {
        "mlflow": [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            pg.mlflow_backend_uri(),
            # Artifacts go through the server (`mlflow-artifacts:/`) into a folder it owns, so
            # clients need no access to the artifact store.
            "--serve-artifacts",
            "--artifacts-destination",
            config.mlflow_artifacts.as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(config.mlflow_port),
            "--workers",
            "1",
        ]
    }
    for location, module in CODE_LOCATIONS:
        commands[f"code-server:{location}"] = [
            str(bin_dir / "dagster"),
            "code-server",
            "start",
            "-h",
            "127.0.0.1",
            "-p",
            str(config.code_port(location)),
            "-m",
            module,
            "--location-name",
            location,
        ]
    # the champions over HTTP, from the MLflow server (MLFLOW_TRACKING_URI of the environment)
    commands["serve"] = [
        str(bin_dir / "headwater"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(config.serve_port),
    ]
    commands["daemon"] = [str(bin_dir / "dagster-daemon"), "run", "-w", str(PRODUCTION_WORKSPACE)]
    webserver = [
        str(bin_dir / "dagster-webserver"),
        "-w",
        str(PRODUCTION_WORKSPACE),
        "-h",
        config.host,
        "-p",
        str(config.port),
    ]
    if config.read_only:
        webserver.append("--read-only")
    commands["webserver"] = webserver
    return commands


def create_databases(pg: PgSettings) -> list[str]:
    """Create whichever of the two databases is missing; returns the names created.

    For a local server: a managed PostgreSQL has its databases created by whoever provisions it.
    """
    import psycopg2

    con = psycopg2.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname="postgres"
    )
    con.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    created = []
    try:
        with con.cursor() as cur:
            for name in (pg.dagster_db, pg.mlflow_db):
                cur.execute("select 1 from pg_database where datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'create database "{name}"')
                    created.append(name)
    finally:
        con.close()
    return created


def prepare_dagster_home(config: StackConfig) -> Path:
    """$DAGSTER_HOME with the production instance config (always the committed one)."""
    config.dagster_home.mkdir(parents=True, exist_ok=True)
    config.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PRODUCTION_INSTANCE_CONFIG, config.dagster_home / "dagster.yaml")
    return config.dagster_home


# -- running -------------------------------------------------------------------------------------


class _Stop(Exception):
    """A stop signal arrived."""


def _raise_stop(signum, _frame) -> None:
    raise _Stop(signal.Signals(signum).name)


def start(name: str, command: list[str], env: Mapping[str, str], logs: Path) -> subprocess.Popen:
    """One process of the stack, in a process group of its own (stopped as a whole), logging to
    `<logs>/<name>.log`."""
    # The child keeps its own copy of the file descriptor; ours is closed at once.
    with log_path(logs, name).open("ab") as log:
        return subprocess.Popen(
            command,
            env=dict(env),
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def stop_all(processes: dict[str, subprocess.Popen], timeout: float = 60) -> dict[str, int]:
    """SIGTERM to each process group, clients before servers; SIGKILL what is left after
    `timeout`. Returns each process's exit code."""
    for name in reversed(list(processes)):
        process = processes[name]
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    codes = {}
    for name, process in processes.items():
        try:
            codes[name] = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            codes[name] = -9
        # Whatever the process left in its group (a code server's children) goes with it.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return codes


def run_stack(
    config: StackConfig, pg: PgSettings, create: bool = False, timeout: float = 300
) -> int:
    """Start the stack, wait until every part answers, then run until a stop signal."""
    bin_dir = Path(sys.executable).parent
    try:
        check_postgres(pg)
    except PostgresUnreachable as e:
        print(f"headwater stack: {e}", flush=True)
        return 1
    if create:
        for name in create_databases(pg):
            print(f"headwater stack: created database {name}", flush=True)
    prepare_dagster_home(config)
    env = stack_environment(config, pg, os.environ)
    logs = config.state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    commands = stack_commands(config, pg, bin_dir)
    processes: dict[str, subprocess.Popen] = {}
    previous = {s: signal.signal(s, _raise_stop) for s in STOP_SIGNALS}
    code = 0
    try:
        for name in ("mlflow", *(f"code-server:{loc}" for loc, _ in CODE_LOCATIONS), "serve"):
            processes[name] = start(name, commands[name], env, logs)
        # The webserver and the daemon start once the code servers answer, so that they load
        # both locations at once; MLflow is needed only when a run logs to it.
        for location, _ in CODE_LOCATIONS:
            port = config.code_port(location)
            wait_until(
                lambda port=port: code_server_ok(port),
                f"code server {location}",
                processes,
                timeout,
                logs,
            )
        for name in ("daemon", "webserver"):
            processes[name] = start(name, commands[name], env, logs)
        for what, url in (
            ("webserver", config.webserver_probe_url),
            ("mlflow", f"{config.mlflow_uri}/health"),
            ("serve", f"{config.serve_url}/health"),
        ):
            wait_until(lambda url=url: http_ok(url), what, processes, timeout, logs)
        print(
            f"headwater stack: ready. Dagster UI {config.webserver_url}"
            f"{' (read-only)' if config.read_only else ''}; MLflow {config.mlflow_uri}; "
            f"models served at {config.serve_url}; "
            f"instance {config.dagster_home} on postgresql://{pg.host}:{pg.port}/{pg.dagster_db}; "
            f"logs in {logs}",
            flush=True,
        )
        while True:
            exited = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
            if exited:
                path = log_path(logs, next(iter(exited)))
                print(
                    f"headwater stack: stopped, a process exited: {exited}; the end of {path}:\n"
                    + log_tail(path),
                    flush=True,
                )
                code = 1
                break
            time.sleep(1)
    except _Stop as stop:
        print(f"headwater stack: {stop}, stopping", flush=True)
    except RuntimeError as e:
        print(f"headwater stack: {e}\nlogs in {logs}", flush=True)
        code = 1
    finally:
        # A second signal while stopping must not cut the cleanup short.
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        codes = stop_all(processes)
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(f"headwater stack: stopped ({', '.join(f'{n}={c}' for n, c in codes.items())})")
    return code
