"""`headwater models` tells a model that is not trained yet from a tracking server it cannot
reach."""

import mlflow
import pytest

from headwater.cli import main
from ml_assets.models.spec import load_specs

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A state folder of its own; what `headwater` and MLflow set in the environment or in
    MLflow's globals is put back afterwards."""
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("HEADWATER_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_models_not_registered_yet_are_reported_as_not_trained(state, capsys):
    assert main(["models"]) == 0

    out = capsys.readouterr().out
    assert f"MLflow: sqlite:///{state / 'mlflow' / 'mlflow.db'}" in out
    for spec in load_specs():
        assert spec.registered_model_name in out
    assert out.count("not trained yet") == len(load_specs())


def test_an_unreachable_tracking_server_is_an_error_naming_it(state, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", UNREACHABLE)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")

    assert main(["models"]) == 1

    out, err = capsys.readouterr()
    assert err.count("\n") == 1  # one line, no traceback
    assert err.startswith("headwater models: cannot read ")
    assert f"from MLflow at {UNREACHABLE}" in err
    assert "not trained yet" not in out
