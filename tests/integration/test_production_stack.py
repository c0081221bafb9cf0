"""The production profile on real servers: `headwater stack` against the PostgreSQL server on
127.0.0.1:5432.

It starts what the containers run: an MLflow server with a PostgreSQL backend store, a
`dagster code-server start` per code location, `dagster-daemon run` and the webserver, with a
DAGSTER_HOME whose dagster.yaml is deploy/dagster.yaml (PostgreSQL storage, run queue, DuckDB
pool). Landing files arrive; the landing sensor's runs go through the queue and build raw ->
marts; a run submitted over GraphQL trains, gates and promotes the fraud model on the MLflow
server and scores a day. Then it asserts in PostgreSQL (Dagster's runs, events, sensor ticks and
pool; MLflow's run, model version and alias), and stops everything with one SIGTERM.

The world is small and its labels mature in 7 days (HEADWATER_LABEL_MATURITY_DAYS), as in the
simulation, so the model trains on 35 days. Each run makes its own two databases and drops them.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from fraud_demo.generator import GeneratorConfig, generate
from headwater.stack import PRODUCTION_WORKSPACE
from tests.conftest import free_port
from tests.processes import session_processes, stop_process_group
from tests.serve_world import free_service_port

BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
DAYS = 35
WORLD = GeneratorConfig(
    seed=5,
    start_date=date(2025, 1, 1),
    days=DAYS,
    transactions=45_000,
    max_report_delay_days=6,
)
LAST_DAY = (WORLD.start_date + timedelta(days=DAYS - 1)).isoformat()
MATURITY_DAYS = "7"
FRAUD = "headwater.fraud_classifier"
# Each wait is generous: the machine may be busy with other work, and a timeout says which
# wait failed and attaches every process's log.
READY_TIMEOUT = 420
RUNS_TIMEOUT = 900


def _connect(dbname: str):
    import psycopg2

    return psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)


def _query(dbname: str, sql: str, params: tuple = ()) -> list[tuple]:
    con = _connect(dbname)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        con.close()


@pytest.fixture
def databases():
    """Two fresh databases on the local server (Dagster's, MLflow's), dropped afterwards."""
    import psycopg2

    try:
        admin = _connect("postgres")
    except psycopg2.OperationalError as e:
        pytest.skip(
            f"PostgreSQL is not reachable on {PG['host']}:{PG['port']} as {PG['user']}: {e}"
        )
    admin.autocommit = True
    prefix = f"headwater_test_{uuid.uuid4().hex[:10]}"
    names = {"dagster": f"{prefix}_dagster", "mlflow": f"{prefix}_mlflow"}
    with admin.cursor() as cur:
        for name in names.values():
            cur.execute(f'create database "{name}"')
    try:
        yield names
    finally:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'drop database if exists "{name}" with (force)')
        admin.close()


def _predict(port: int, body: dict) -> tuple[int, dict]:
    """`headwater serve`'s answer for the fraud model: status and JSON body."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/fraud_classifier/predict",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def _feature_row(warehouse: Path) -> dict:
    """One transaction of the last day as a request: its key and its features."""
    from ml_assets.models.spec import load_specs

    spec = next(s for s in load_specs() if s.name == "fraud_classifier")
    columns = ", ".join([*spec.keys, *spec.features])
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(
            f"select {columns} from {spec.feature_set} where {spec.score_date} = ? limit 1",
            [LAST_DAY],
        )
        names = [d[0] for d in cursor.description]
        row = dict(zip(names, cursor.fetchone()))
    # JSON has numbers, strings and booleans: a DECIMAL is sent as a number
    return {
        k: float(v) if not isinstance(v, str | bool | int | None) else v for k, v in row.items()
    }


def _logs(state: Path, stack_log: Path) -> str:
    """The tail of every process's log, for a failure message."""
    parts = [f"--- headwater stack\n{stack_log.read_text()[-2000:]}"]
    for log in sorted((state / "logs").glob("*.log")):
        parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename } } } } }
"""
SENSOR = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { __typename ... on Sensor { id } }
}
"""
STOP_SENSOR = """
mutation ($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""


def _wait_for(condition, what: str, timeout: float, stack: subprocess.Popen, logs) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:  # a server not listening yet
            pass
        assert stack.poll() is None, f"headwater stack exited while waiting for {what}\n{logs()}"
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s\n{logs()}"
        time.sleep(3)


def _locations_loaded(port: int) -> bool:
    entries = _graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]
    return {
        e["name"] for e in entries if e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    } == {
        "data_platform",
        "ml_assets",
    }


def _stop_sensor(port: int, location: str, name: str) -> str:
    selector = {
        "repositoryLocationName": location,
        "repositoryName": "__repository__",
        "sensorName": name,
    }
    sensor = _graphql(port, SENSOR, {"selector": selector})["sensorOrError"]
    assert sensor["__typename"] == "Sensor", sensor
    result = _graphql(port, STOP_SENSOR, {"id": sensor["id"]})["stopSensor"]
    assert result["__typename"] == "StopSensorMutationResult", result
    return result["instigationState"]["status"]


def _runs(db: str) -> list[tuple[str, str, str]]:
    """(run_id, job name, status) of every run in the instance."""
    return _query(db, "select run_id, pipeline_name, status from runs order by create_timestamp")


def _run_tags(db: str, key: str) -> dict[str, str]:
    return dict(_query(db, "select run_id, value from run_tags where key = %s", (key,)))


def _ml_selection() -> list[str]:
    """The fraud model's lifecycle from features to a day's scores (the other model's labels
    take 30 days to mature: they would not in this world)."""
    from ml_assets.definitions import defs

    keys = {k for a in defs.assets if getattr(a, "is_executable", False) for k in a.keys}
    return sorted(
        k.to_user_string()
        for k in keys
        if k.path[0] == "features"
        or (k.path[0] in ("models", "scores") and k.path[1] == "fraud_classifier")
    )


# In the slow tier: about 3 minutes on 2 cores (174-176 s alone on 2026-12-01), the largest
# part of a default tier that had grown to 17 minutes against its 15-minute budget.
@pytest.mark.slow
def test_production_stack_on_postgres(tmp_path, databases):
    from dagster_graphql import DagsterGraphQLClient

    started = time.monotonic()
    phases: dict[str, float] = {}
    state = tmp_path / "state"
    # Delivered before the stack starts, so the landing sensor's first tick asks for them.
    generate(WORLD, state / "landing", progress=False)
    port, mlflow_port, serve_port = free_port(), free_port(), free_service_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEADWATER_", "DAGSTER_", "MLFLOW_"))
    }
    env.update(
        HEADWATER_HOME=str(state),
        HEADWATER_LABEL_MATURITY_DAYS=MATURITY_DAYS,
        DAGSTER_PG_HOST=PG["host"],
        DAGSTER_PG_PORT=str(PG["port"]),
        DAGSTER_PG_USER=PG["user"],
        DAGSTER_PG_PASSWORD="",
        DAGSTER_PG_DB=databases["dagster"],
        MLFLOW_PG_DB=databases["mlflow"],
    )
    stack_log = tmp_path / "stack.log"
    stack = subprocess.Popen(
        [
            str(BIN / "headwater"),
            "stack",
            "--port",
            str(port),
            "--mlflow-port",
            str(mlflow_port),
            "--data-code-port",
            str(free_port()),
            "--ml-code-port",
            str(free_port()),
            "--serve-port",
            str(serve_port),
        ],
        env=env,
        stdout=stack_log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def logs() -> str:
        return _logs(state, stack_log)

    db = databases["dagster"]
    try:
        _wait_for(lambda: "ready" in stack_log.read_text(), "the stack", READY_TIMEOUT, stack, logs)
        _wait_for(
            lambda: _locations_loaded(port), "both code locations", READY_TIMEOUT, stack, logs
        )
        phases["ready"] = time.monotonic() - started
        processes = session_processes(stack.pid)
        commands = " | ".join(processes.values())
        for part in (
            "code-server start -h 127.0.0.1",
            "-m data_platform.definitions",
            "-m ml_assets.definitions",
            "dagster-daemon run -w",
            "mlflow server --backend-store-uri postgresql+psycopg2://",
            f"dagster-webserver -w {PRODUCTION_WORKSPACE} -h 127.0.0.1",
            f"headwater serve --host 127.0.0.1 --port {serve_port}",
        ):
            assert part in commands, f"{part!r} not among the stack's processes: {commands}"
        # no champion yet: the service answers, with a body that says so
        before = _predict(serve_port, {"row": {}})
        assert before[0] == 503 and before[1]["error"] == "no_champion", before

        # The ML location's automation would race the explicit ML run below; its logic has
        # tests of its own (test_automation.py, the simulation). It cannot have asked for
        # anything yet: every ML asset needs the marts, which take the landing sensor two runs.
        for name in ("ml_automation", "model_monitor"):
            assert _stop_sensor(port, "ml_assets", name) == "STOPPED"
        _wait_for(
            lambda: (
                any(v == "landing_sensor" for v in _run_tags(db, "dagster/sensor_name").values())
                and _runs(db)
                and all(status in ("SUCCESS", "FAILURE", "CANCELED") for _, _, status in _runs(db))
                and len(_runs(db)) >= 2
            ),
            "the landing sensor's runs",
            RUNS_TIMEOUT,
            stack,
            logs,
        )
        assert {s for _, _, s in _runs(db)} == {"SUCCESS"}, f"{_runs(db)}\n{logs()}"
        phases["raw -> marts"] = time.monotonic() - started

        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        ml_run = client.submit_job_execution(
            "__ASSET_JOB",
            repository_location_name="ml_assets",
            repository_name="__repository__",
            asset_selection=[key.split("/") for key in _ml_selection()],
            tags={
                "dagster/asset_partition_range_start": LAST_DAY,
                "dagster/asset_partition_range_end": LAST_DAY,
                "headwater/trigger": "production_stack_test",
            },
        )
        _wait_for(
            lambda: (
                _query(db, "select status from runs where run_id = %s", (ml_run,))[0][0]
                in ("SUCCESS", "FAILURE", "CANCELED")
            ),
            "the ML run",
            RUNS_TIMEOUT,
            stack,
            logs,
        )
        ml_status = _query(db, "select status from runs where run_id = %s", (ml_run,))[0][0]
        assert ml_status == "SUCCESS", logs()
        phases["ML run"] = time.monotonic() - started
        # the promoted champion over HTTP, within the service's poll interval
        row = _feature_row(state / "warehouse.duckdb")
        _wait_for(
            lambda: _predict(serve_port, {"row": row})[0] == 200, "a served score", 120, stack, logs
        )
        answer = _predict(serve_port, {"row": row})[1]
        assert answer["version"] == "1" and 0 <= answer["predictions"][0]["score"] <= 1, answer
        # Ticks are written as they happen: read them while the daemon still runs.
        ticks = _query(db, "select tick_body from job_ticks where type = 'SENSOR'")
    finally:
        # One SIGTERM to `headwater stack`, as `kill` or a service manager sends it; what is
        # still running once it exited is killed and reported.
        left = stop_process_group(stack, timeout=120, leader_only=True, rest_timeout=0)
    phases["stopped"] = time.monotonic() - started
    print("production stack test, seconds since start:", phases)
    assert stack.returncode == 0, logs()
    assert not left, f"processes left behind: {left}"
    stopped = stack_log.read_text()
    assert "headwater stack: stopped (" in stopped and "=-9" not in stopped, stopped

    # -- Dagster, in PostgreSQL --------------------------------------------------------------
    runs = _runs(db)
    sensor_runs = {
        r for r, v in _run_tags(db, "dagster/sensor_name").items() if v == "landing_sensor"
    }
    assert len(sensor_runs) >= 2 and {r for r, _, _ in runs} == sensor_runs | {ml_run}, runs
    assert all(status == "SUCCESS" for _, _, status in runs), runs
    # every run went through the queue: enqueued by the coordinator, then started by the daemon
    for event_type in ("PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_SUCCESS"):
        with_event = {
            r
            for (r,) in _query(
                db,
                "select distinct run_id from event_logs where dagster_event_type = %s",
                (event_type,),
            )
        }
        assert {r for r, _, _ in runs} <= with_event, (event_type, runs)
    materialized = {
        tuple(json.loads(key))
        for (key,) in _query(
            db,
            "select distinct asset_key from event_logs "
            "where dagster_event_type = 'ASSET_MATERIALIZATION'",
        )
    }
    assert {
        ("raw", "transactions"),
        ("raw", "customers"),
        ("staging", "stg_payments__transactions"),
        ("marts", "fct_transactions"),
        ("marts", "dim_customers"),
        ("features", "transaction_features"),
        ("models", "fraud_classifier", "model"),
        ("models", "fraud_classifier", "champion"),
        ("scores", "fraud_classifier"),
    } <= materialized, sorted(materialized)
    # the landing sensor's ticks, with the runs they requested
    # (Dagster stores a tick's instigator name under its older name, `job_name`.)
    ticks = [json.loads(body) for (body,) in ticks]
    requested = {r for t in ticks if t["job_name"] == "landing_sensor" for r in t["run_ids"]}
    assert sensor_runs == requested, (sensor_runs, requested)
    assert {t["job_name"] for t in ticks} >= {"landing_sensor", "ml_automation"}
    # the DuckDB writer pool was created in the instance with its single slot
    slots = dict(_query(db, "select concurrency_key, count(*) from concurrency_slots group by 1"))
    assert slots.get("duckdb_warehouse") == 1, slots

    # -- MLflow, in PostgreSQL and the server's artifact root ---------------------------------
    mlflow_db = databases["mlflow"]
    (run_uuid, status, artifact_uri), *others = _query(
        mlflow_db,
        "select r.run_uuid, r.status, r.artifact_uri from runs r join tags t "
        "on t.run_uuid = r.run_uuid and t.key = 'dagster.run_id' where t.value = %s",
        (ml_run,),
    )
    assert not others and status == "FINISHED"
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    metrics = {
        k for (k,) in _query(mlflow_db, "select key from metrics where run_uuid = %s", (run_uuid,))
    }
    assert {"test_roc_auc", "test_pr_auc"} <= metrics, metrics
    # the gate passed the first version: it holds the champion alias
    aliases = _query(
        mlflow_db, "select alias, version from registered_model_aliases where name = %s", (FRAUD,)
    )
    assert ("champion", 1) in aliases, aliases
    artifacts = state / "mlflow_server" / "artifacts"
    assert any(p.name == "feature_importance.svg" for p in artifacts.rglob("*")), artifacts

    # -- the warehouse --------------------------------------------------------------------------
    con = duckdb.connect(str(state / "warehouse.duckdb"), read_only=True)
    try:
        raw, facts, scored, version = con.execute(
            "select (select count(*) from raw.transactions), "
            "(select count(*) from marts.fct_transactions), count(*), max(model_version) "
            f"from scores.fraud_classifier where cast(event_time as date) = '{LAST_DAY}'"
        ).fetchone()
    finally:
        con.close()
    assert raw == facts > 40_000 and scored > 0 and version == "1"
    print(f"production stack test: {time.monotonic() - started:.0f} s")
