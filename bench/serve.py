"""The `serve` part: single-row latency of `headwater serve` at a steady request rate, with
request-carried features and with online features, against the floor (the raw Booster on a
numpy row, one thread, in process) and against `mlflow models serve` on the same registered
model, in one run.

The world is `bench/serve_world.py`'s: a generated fraud world whose day D is the traffic. The
model is the fraud classifier (its spec: 17 features, 3 categorical) at the issue's size (600
trees of 31 leaves), fitted on the days before D and registered by the platform's own code
(`log_training_run`, then `move_champion`) in the part's MLflow store. The services are real
processes on the loopback; one client sends one row per request over a keep-alive connection,
paced at `serve_rate` requests per second (open loop: a late request is sent at once), and times
each from send to parsed answer. Legs:

    floor        D's feature rows, Booster.predict in process, cycled for `serve_seconds`
    headwater    `headwater serve --feature-source request`: D's feature rows as requests
    online       `headwater serve --feature-source online`: D's raw transactions as requests,
                 each once and in time order (the store learns each one), features from the
                 store the `online/transaction_features` asset wrote at the end of D-1, on the
                 SQLite engine (the default), then on the DuckDB engine (a copy of the store)
    mlflow       `mlflow models serve` of a pyfunc around the registered Booster: D's feature rows

Both `headwater serve` legs' scores are compared, by transaction id, with `mlflow models
serve`'s scores of the offline feature rows: the online leg's difference is also the parity of
its features with the feature table.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.report import SERVE_SCORE_TOLERANCE

TREES, LEAVES = 600, 31
MODEL_ASSET = "models/fraud_classifier/model"
COMPARED_ROWS = 200  # rows both services score, compared


def register_champion(spec, tracking, table) -> str:
    """Fit the fraud model at the issue's size on `table` (a split training set) and make it
    the champion; returns its version."""
    from ml_assets.models.evaluate import metrics_on_test_window
    from ml_assets.models.mlflow_run import RunOrigin, log_training_run
    from ml_assets.models.registry import move_champion
    from ml_assets.models.train import fit

    spec = dataclasses.replace(
        spec,
        lightgbm={
            **spec.lightgbm,
            "num_boost_round": TREES,
            "num_leaves": LEAVES,
            "min_data_in_leaf": 5,
        },
        early_stopping_rounds=TREES,  # every tree kept: the model has the size
        split=dataclasses.replace(spec.split, refit=False),
    )
    fitted = fit(spec, table)
    logged = log_training_run(
        tracking, spec, fitted, table,
        source=Path("serve-world.parquet"),
        data_version="bench",
        metrics=metrics_on_test_window(spec, table, fitted.frame, fitted.trained.booster),
        origin=RunOrigin(run_id="bench-serve", asset_key=MODEL_ASSET, code_version="bench"),
    )  # fmt: skip
    move_champion(tracking, spec.registered_model_name, logged.version, "promoted", "bench")
    return logged.version


def percentiles(latencies_ms: list[float]) -> dict:
    values = np.asarray(latencies_ms)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "requests": len(values),
    }


def paced(call, rate: float, seconds: float, total: int | None = None) -> dict:
    """Call `call(i)` at `rate` per second for `seconds`, or `total` times (open loop: a late
    call is made at once); the latency of each and the throughput reached."""
    latencies, failed = [], 0
    total = total or max(1, int(rate * seconds))
    started = time.perf_counter()
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent = time.perf_counter()
        failed += not call(i)
        latencies.append((time.perf_counter() - sent) * 1000)
    elapsed = time.perf_counter() - started
    return {**percentiles(latencies), "failed": failed, "throughput_rps": total / elapsed}


def floor_latency(booster, spec, rows: list[dict], rate: float, seconds: float) -> dict:
    """The raw Booster on one numpy row per call, one thread, at the services' request rate:
    no HTTP, no validation."""
    from headwater.serve.model import ServedModel, categories_of

    model = ServedModel(
        name=spec.name, registered_name="", version="", alias="", booster=booster,
        features=tuple(booster.feature_name()), categories=categories_of(booster, spec.categorical),
    )  # fmt: skip
    matrices = [model.matrix([row]) for row in rows]
    iteration = getattr(booster, "best_iteration", None) or None

    def call(i: int) -> bool:
        booster.predict(matrices[i % len(matrices)], num_iteration=iteration, num_threads=1)
        return True

    return paced(call, rate, seconds)


def drive(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, once: bool = False
) -> tuple[dict, list]:
    """Send one body after another at `rate` per second for `seconds` (cycling through them),
    or each body once in order (`once`); the latency figures, and the answers of a `once`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    answers: list = []

    def call(i: int) -> bool:
        connection.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
        if once:
            answers.append(answer)
        return response.status == 200

    try:
        return paced(call, rate, seconds, total=len(bodies) if once else None), answers
    finally:
        connection.close()


def scores_of(port: int, path: str, bodies: list[bytes], pick) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for body in bodies:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        out.append(pick(json.loads(connection.getresponse().read())))
    connection.close()
    return out


def free_port(first: int, count: int = 50) -> int:
    """The first port of `first` .. `first + count - 1` that nothing listens on right now."""
    for port in range(first, first + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}..{first + count - 1}")


def start(command: list[str], log: Path, env: dict) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group, SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_ready(port: int, path: str, process: subprocess.Popen, log: Path, timeout=300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{log.name}: the server exited:\n{log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{log.name}: not ready in {timeout} s:\n{log.read_text()[-3000:]}")


def log_pyfunc_wrapper(spec, version: str, folder: Path) -> str:
    """Log `bench/mlflow_pyfunc.py` around the registered version's own Booster file, with the
    registered version's signature; returns the logged model's URI."""
    import mlflow

    source = f"models:/{spec.registered_model_name}/{version}"
    downloaded = Path(mlflow.artifacts.download_artifacts(source, dst_path=str(folder)))
    (booster_file,) = downloaded.glob("*.lgb")  # the lightgbm flavor's file, as registered
    with mlflow.start_run(run_name="bench-serve-pyfunc"):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("mlflow_pyfunc.py")),
            artifacts={"booster": str(booster_file)},
            model_config={"categorical": list(spec.categorical)},
            signature=mlflow.models.get_model_info(source).signature,
            pip_requirements=["lightgbm", "pandas<3", "numpy"],
        )
    return info.model_uri


def mlflow_bodies(spec, rows: list[dict]) -> list[bytes]:
    """MLflow's `dataframe_split` payload of one row each, the columns the signature names."""
    columns = list(spec.features)
    return [
        json.dumps(
            {"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns]]}}
        ).encode()
        for row in rows
    ]


def mlflow_serve(model_uri: str, port: int, log: Path, env: dict) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    return start(command, log, env)


def flavor_answer(model_uri: str, port: int, bodies: list[bytes], log: Path, env: dict) -> dict:
    """What `mlflow models serve` of the registered lightgbm flavor answers to a few rows."""
    process = mlflow_serve(model_uri, port, log, env)
    try:
        wait_ready(port, "/ping", process, log)
        answers = scores_of(port, "/invocations", bodies, lambda b: b)
    finally:
        stop(process)
    refused = [a for a in answers if "predictions" not in a]
    # the error's own words are the stack trace's last line (LightGBM's, for a categorical model)
    reason = str(answers[0].get("stack_trace") or answers[0]).strip().splitlines()[-1]
    return {"rows": len(answers), "refused": len(refused), "answer": reason[:600]}


def headwater_leg(
    command: list[str],
    log: Path,
    env: dict,
    port: int,
    bodies: list[bytes],
    config: dict,
    once: bool = False,
) -> tuple[dict, list]:
    """`headwater serve` started with `command`, driven, stopped: (figures, answers). `once`:
    each body sent once, in order (online features: the store learns from each request)."""
    rate, seconds = float(config.get("serve_rate", 200)), float(config.get("serve_seconds", 20))
    serve = start([*command, "--port", str(port)], log, env)
    try:
        wait_ready(port, "/ready", serve, log)
        path = "/v1/models/fraud_classifier/predict"
        if once:
            return drive(port, path, bodies, rate, seconds, once=True)
        answers = scores_of(port, path, bodies[:COMPARED_ROWS], lambda b: b)
        return drive(port, path, bodies, rate, seconds)[0], answers
    finally:
        stop(serve)


def copy_store(url: str, target: Path) -> str:
    """A consistent copy of a SQLite online store (SQLite's backup: the WAL included)."""
    import sqlite3

    source, copy = sqlite3.connect(url), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return str(target)


def score_difference(ours: list[dict], theirs: dict[str, float]) -> float:
    """The largest difference between `headwater serve`'s answers and `mlflow models serve`'s
    scores of the same transactions."""
    pairs = [(p["score"], theirs[p["transaction_id"]]) for a in ours for p in a["predictions"]]
    return float(np.max(np.abs(np.subtract(*zip(*pairs))))) if pairs else float("inf")


def mlflow_leg(spec, version, uri, port, rows, env, folder, config) -> dict:
    """The registered lightgbm flavor as is, then a pyfunc around the same Booster: figures
    and the scores of every row, by transaction id."""
    import mlflow

    rate, seconds = float(config.get("serve_rate", 200)), float(config.get("serve_seconds", 20))
    bodies = mlflow_bodies(spec, rows)
    # the registered lightgbm flavor itself, first: it refuses a categorical model's rows
    champion = f"models:/{spec.registered_model_name}@champion"
    flavor = flavor_answer(champion, port, bodies[:3], folder / "mlflow-flavor.log", env)
    mlflow.set_tracking_uri(uri)
    wrapper = log_pyfunc_wrapper(spec, version, folder / "mlflow-pyfunc")
    port, log = free_port(port + 1), folder / "mlflow-serve.log"
    process = mlflow_serve(wrapper, port, log, env)
    try:
        wait_ready(port, "/ping", process, log)
        scores = scores_of(port, "/invocations", bodies, lambda b: float(b["predictions"][0]))
        figures = drive(port, "/invocations", bodies, rate, seconds)[0]
    finally:
        stop(process)
    ids = [row["transaction_id"] for row in rows]
    return {
        "flavor": flavor,
        "model": wrapper,
        "figures": figures,
        "scores": dict(zip(ids, scores)),
    }


def measure_serve(config: dict) -> dict:
    """The part: the world built and the champion registered, the floor measured, then each
    service in turn."""
    from bench.serve_world import build_world
    from headwater_core.config import state_dir
    from ml_assets.models.spec import load_specs
    from ml_assets.models.tracking import MlflowTracking, load_booster

    spec = next(s for s in load_specs() if s.name == "fraud_classifier")
    folder = state_dir()
    world = build_world(folder / "serve-world", spec)
    tracking = MlflowTracking()
    uri = tracking.resolved_uri()
    version = register_champion(spec, tracking, world.training)
    booster = load_booster(tracking, spec.registered_model_name, version)
    rows = world.feature_rows
    rate, seconds = float(config.get("serve_rate", 200)), float(config.get("serve_seconds", 20))
    bin_dir = Path(sys.executable).parent
    # `mlflow models serve` starts `uvicorn` by name: the environment's bin folder comes first
    search_path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": search_path}
    result: dict = {"model_version": version, "trees": booster.num_trees(), "rate": rate}
    result["floor"] = floor_latency(booster, spec, rows, rate, seconds)

    serve = [str(bin_dir / "headwater"), "serve", "--tracking-uri", uri, "--feature-source"]
    port = free_port(int(config.get("serve_port", 18650)))
    bodies = [json.dumps({"row": row}).encode() for row in rows]
    result["headwater"], ours = headwater_leg(
        [*serve, "request"], folder / "headwater-serve.log", env, port, bodies, config
    )
    bodies = [json.dumps({"row": row}).encode() for row in world.requests]
    # the same store for both engines: the DuckDB leg's copy is taken before any request
    duckdb_store = copy_store(world.store_url, folder / "serve-world" / "online-duckdb.sqlite")
    served = {}
    for leg, store, engine in (
        ("headwater_online", world.store_url, "sqlite"),
        ("headwater_online_duckdb", duckdb_store, "duckdb"),
    ):
        port = free_port(port + 1)
        online = [*serve, "online", "--online-store", store, "--online-engine", engine]
        log = folder / f"headwater-serve-online-{engine}.log"
        result[leg], served[leg] = headwater_leg(online, log, env, port, bodies, config, once=True)
    mlflow = mlflow_leg(spec, version, uri, free_port(port + 1), rows, env, folder, config)
    result.update(
        mlflow_flavor=mlflow["flavor"],
        mlflow_model=mlflow["model"],
        mlflow=mlflow["figures"],
        max_score_difference=score_difference(ours, mlflow["scores"]),
        compared_rows=len(ours),
        online_max_score_difference=score_difference(served["headwater_online"], mlflow["scores"]),
        online_compared_rows=len(served["headwater_online"]),
        online_duckdb_max_score_difference=score_difference(
            served["headwater_online_duckdb"], mlflow["scores"]
        ),
    )
    result["scores_match"] = (
        max(
            result["max_score_difference"],
            result["online_max_score_difference"],
            result["online_duckdb_max_score_difference"],
        )
        <= SERVE_SCORE_TOLERANCE
    )
    return result
