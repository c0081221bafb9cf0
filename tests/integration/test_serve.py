"""`headwater serve` in process (FastAPI's test client on the real app, a real MLflow store in
tmp_path, real LightGBM models registered by the platform's own code): 503 before a champion,
scores equal to batch scores, bad input answered 422 naming the field with nothing logged, and
the shadow challenger logged beside the champion without changing the answer.

The service as a subprocess, followed through promotion and rollback under load, is
test_serve_process.py."""

import time

import pytest
from fastapi.testclient import TestClient

from headwater.serve.server import ServeSettings, build_app
from ml_assets.models.registry import move_champion
from ml_assets.models.spec import spec_from_yml
from ml_assets.models.tracking import MlflowTracking
from ml_assets.serving.prediction_log import read_day
from tests.serve_world import batch_scores, register, request_rows, training_table, write_spec

MAX_ROWS = 50


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    specs = write_spec(folder / "specs")
    spec = spec_from_yml(specs / "tiny.yml")
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    table = training_table()
    return {"folder": folder, "specs": specs, "spec": spec, "tracking": tracking, "table": table}


@pytest.fixture(scope="module")
def client(world):
    settings = ServeSettings(
        tracking_uri=world["tracking"].resolved_uri(),
        model_specs=world["specs"],
        log_dir=world["folder"] / "log",
        poll_seconds=0.2,
        max_rows=MAX_ROWS,
        flush_seconds=0.2,
    )
    with TestClient(build_app(settings)) as c:
        yield c


def _wait_version(client, version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get("/v1/models/tiny")
        if answer.status_code == 200 and answer.json()["version"] == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"version {version} not served within {timeout} s: {answer.json()}")


def _wait_log(root, roles: set[str], timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = read_day(root, "tiny", _DAY)
        if roles <= set(table.column("role").to_pylist()):
            return table
        time.sleep(0.1)
    raise AssertionError(f"no {roles} records in the log: {table.to_pylist()}")


_DAY = training_table().column("_event_date")[0].as_py()


@pytest.fixture(scope="module")
def champion(world, client):
    """Before a champion: 503 with a clear body; then version 1 registered and promoted."""
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["models"]["tiny"]["error"] == "no_champion"
    answer = client.post("/v1/models/tiny/predict", json={"rows": request_rows(world["table"], 1)})
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "no_champion" and "champion" in answer.json()["detail"]
    tracking, name = world["tracking"], world["spec"].registered_model_name
    version = register(tracking, world["spec"], world["table"], 1, "run00001")
    move_champion(tracking, name, version, "promoted", "test")
    _wait_version(client, version)
    return version


def test_scores_equal_batch_scores_and_the_model_describes_itself(world, client, champion):
    rows = request_rows(world["table"], 40)
    answer = client.post("/v1/models/tiny/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == champion
    assert [p["id"] for p in body["predictions"]] == [r["id"] for r in rows]
    expected = batch_scores(world["tracking"], world["spec"], champion, world["table"], 40)
    assert [p["score"] for p in body["predictions"]] == pytest.approx(expected, abs=1e-12)
    one = client.post("/v1/models/tiny/predict", json={"row": rows[3]}).json()
    assert one["predictions"][0]["score"] == pytest.approx(expected[3], abs=1e-12)

    info = client.get("/v1/models/tiny").json()
    assert info["alias"] == "champion" and info["version"] == champion
    assert set(info["training_window"]) == {"train", "validation", "test"}
    assert "roc_auc" in info["test_metrics"] and info["trained_through"]
    assert info["request_fields"]["kind"]["categories"] == ["a", "b", "c"]
    assert client.get("/ready").status_code == 200
    assert "/v1/models/{name}/predict" in client.get("/openapi.json").json()["paths"]
    assert client.post("/v1/models/nope/predict", json={"rows": rows}).status_code == 404


BAD = {
    "missing field": ({"drop": "x1"}, 0, "x1", "missing"),
    "extra field": ({"set": {"colour": "red"}}, 1, "colour", "unknown field"),
    "wrong type": ({"set": {"x2": "high"}}, 2, "x2", "must be a number"),
    "unknown category": ({"set": {"kind": "zzz"}}, 0, "kind", "unknown category"),
    "NaN": ({"raw": '"x1": NaN'}, 1, "x1", "finite"),
    "key of a wrong type": ({"set": {"id": [1]}}, 0, "id", "string or an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_422_naming_field_and_row_and_nothing_is_logged(world, client, champion, case):
    change, index, field, message = BAD[case]
    rows = request_rows(world["table"], 3)
    for i, row in enumerate(rows):
        row["id"] = f"bad-{case}-{i}"
    row = rows[index]
    if "drop" in change:
        del row[change["drop"]]
    row.update(change.get("set", {}))
    import json

    body = json.dumps({"rows": rows})
    if "raw" in change:  # JSON has no NaN; Python's encoder (and many clients) write it anyway
        body = body.replace(f'"x1": {rows[index]["x1"]}', change["raw"], 1)
    answer = client.post(
        "/v1/models/tiny/predict", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["problems"]
    assert (problem["row"], problem["field"]) == (index, field)
    assert message in problem["message"]
    time.sleep(0.5)  # two flush intervals: had anything been queued, it would be written now
    logged = read_day(world["folder"] / "log", "tiny", _DAY).column("keys_json").to_pylist()
    assert not [k for k in logged if "bad-" in k]


def test_oversized_batches_and_bodies_that_are_not_rows_are_refused(world, client, champion):
    rows = request_rows(world["table"], MAX_ROWS + 1)
    answer = client.post("/v1/models/tiny/predict", json={"rows": rows})
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["field"] == "rows"
    assert str(MAX_ROWS) in answer.json()["problems"][0]["message"]
    for body in (b"{not json", b"[1, 2]", b'{"rows": []}', b'{"rows": [1]}'):
        answer = client.post(
            "/v1/models/tiny/predict", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422, body
    assert client.get("/health").status_code == 200  # still alive


def test_the_challenger_is_shadowed_and_logged_without_changing_the_answer(world, client, champion):
    tracking, spec, table = world["tracking"], world["spec"], world["table"]
    challenger = register(tracking, spec, table, 7, "run00007")  # the challenger alias, unpromoted
    deadline = time.monotonic() + 60
    while client.get("/v1/models/tiny").json()["challenger_version"] != challenger:
        assert time.monotonic() < deadline, "the challenger was never loaded"
        time.sleep(0.1)
    rows = request_rows(table, 10)
    for row in rows:
        row["id"] = f"shadow-{row['id']}"
    answer = client.post("/v1/models/tiny/predict", json={"rows": rows}).json()
    champion_scores = batch_scores(tracking, spec, champion, table, 10)
    shadow_scores = batch_scores(tracking, spec, challenger, table, 10)
    assert answer["version"] == champion
    assert [p["score"] for p in answer["predictions"]] == pytest.approx(champion_scores, abs=1e-12)
    assert shadow_scores != pytest.approx(champion_scores)  # two different models

    log = _wait_log(world["folder"] / "log", {"champion", "shadow"}).to_pylist()
    mine = [r for r in log if r["request_id"] == answer["request_id"]]
    by_role = {role: [r for r in mine if r["role"] == role] for role in ("champion", "shadow")}
    assert [r["model_version"] for r in by_role["champion"]] == [champion] * 10
    assert [r["model_version"] for r in by_role["shadow"]] == [challenger] * 10
    assert [r["score"] for r in by_role["champion"]] == pytest.approx(champion_scores, abs=1e-12)
    assert [r["score"] for r in by_role["shadow"]] == pytest.approx(shadow_scores, abs=1e-12)
    assert all(r["latency_ms"] > 0 for r in mine)
