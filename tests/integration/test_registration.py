"""Registration is one decision: a model version becomes the challenger only once every tag and
artifact the gate, the champion and monitoring read exists; a half-registered version is refused.

A real MLflow store (SQLite in tmp_path; MLflow runs `git`, hence not a unit test) and a tiny
real LightGBM model; failures are injected into the MLflow client at each step of registration,
as a process dying there would leave it.
"""

import json
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pytest
import yaml

from headwater_core.names import (
    CHALLENGER,
    CHAMPION,
    TAG_COMPLETE,
    TAG_GATE,
    TAG_HOLDOUT_ARTIFACT,
    TAG_TEST_METRICS,
    TAG_TRAINING_SAMPLE,
)
from ml_assets.models.evaluate import metrics_on_test_window
from ml_assets.models.evaluation import evaluate_challenger
from ml_assets.models.mlflow_run import RunOrigin, log_training_run
from ml_assets.models.registry import IncompleteVersionError, move_champion, rollback
from ml_assets.models.sampling import METADATA_KEY, Sample
from ml_assets.models.spec import spec_from_yml
from ml_assets.models.tracking import MlflowTracking
from ml_assets.models.train import WEIGHT_COLUMN, fit

DAYS = 30


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spec")
    path = folder / "tiny.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "description": "A tiny classifier for registration tests.",
                "feature_set": "features.tiny",
                "keys": ["id"],
                "event_time": "event_time",
                "score_date": "event_date",
                "label": {"table": "features.tiny_labels", "column": "y", "matures_at": "at"},
                "objective": "binary",
                "features": ["x1", "x2", "kind"],
                "categorical": ["kind"],
                "baseline_feature": "x1",
                "split": {"test_days": 5, "validation_days": 5, "refit": True},
                "lightgbm": {"num_boost_round": 20, "seed": 1, "min_data_in_leaf": 5},
                "promotion": {"metric": "roc_auc", "min_improvement": 0.0},
            }
        )
    )
    return spec_from_yml(path)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    rows = DAYS * 40
    days = [date(2025, 1, 1) + timedelta(days=int(d)) for d in np.repeat(np.arange(DAYS), 40)]
    x1 = rng.normal(size=rows)
    split = np.where(
        np.repeat(np.arange(DAYS), 40) >= DAYS - 5,
        "test",
        np.where(np.repeat(np.arange(DAYS), 40) >= DAYS - 10, "validation", "train"),
    )
    return pa.table(
        {
            "id": np.arange(rows),
            "_event_time": days,
            "_event_date": days,
            "x1": x1,
            "x2": rng.normal(size=rows),
            "kind": rng.choice(["a", "b", "c"], rows),
            "_label": (x1 + rng.normal(scale=0.5, size=rows) > 1.0).astype("float64"),
            "_split": split,
        }
    )


@pytest.fixture(scope="module")
def fitted(spec, table):
    return fit(spec, table)


def _register(tracking, spec, fitted, table, tmp_path: Path, run: str = "r0000000"):
    return log_training_run(
        tracking,
        spec,
        fitted,
        table,
        source=tmp_path / "training_set.parquet",
        data_version="v",
        metrics=metrics_on_test_window(spec, table, fitted.frame, fitted.trained.booster),
        origin=RunOrigin(run_id=run, asset_key="models/tiny/model", code_version="c"),
    )


class Crash(RuntimeError):
    """The process dying at this step of registration."""


def _fail_at(monkeypatch, n: int) -> None:
    """Make the n-th write to the registry (a version tag or an alias) raise."""
    calls = {"count": 0}
    client = mlflow.MlflowClient
    originals = {
        m: getattr(client, m) for m in ("set_model_version_tag", "set_registered_model_alias")
    }

    def wrap(method):
        def injected(self, *args, **kwargs):
            calls["count"] += 1
            if calls["count"] == n:
                raise Crash(f"crash at registry write {n} ({method})")
            return originals[method](self, *args, **kwargs)

        return injected

    for method in originals:
        monkeypatch.setattr(client, method, wrap(method))


def _writes_of_one_registration(monkeypatch, tracking, spec, fitted, table, tmp_path) -> int:
    calls = {"count": 0}
    client = mlflow.MlflowClient
    originals = {
        m: getattr(client, m) for m in ("set_model_version_tag", "set_registered_model_alias")
    }

    def wrap(method):
        def counted(self, *args, **kwargs):
            calls["count"] += 1
            return originals[method](self, *args, **kwargs)

        return counted

    with monkeypatch.context() as m:
        for method in originals:
            m.setattr(client, method, wrap(method))
        _register(tracking, spec, fitted, table, tmp_path)
    return calls["count"]


def test_a_crash_at_any_step_of_registration_leaves_the_challenger_where_it_was(
    spec, table, fitted, tmp_path, monkeypatch
):
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    writes = _writes_of_one_registration(monkeypatch, tracking, spec, fitted, table, tmp_path)
    first = tracking.version_by_alias(spec.registered_model_name, CHALLENGER)
    assert first is not None and first.tags[TAG_COMPLETE] == "true"
    assert writes >= 5
    for n in range(1, writes + 1):
        with monkeypatch.context() as m:
            _fail_at(m, n)
            with pytest.raises(Crash):
                _register(tracking, spec, fitted, table, tmp_path, run=f"r{n:07d}")
        challenger = tracking.version_by_alias(spec.registered_model_name, CHALLENGER)
        assert challenger.version == first.version, f"the alias moved before write {n} of {writes}"
        if n < writes:  # the alias move is the last write: before it, not even marked complete
            newest = max(
                int(v.version)
                for v in tracking.client().search_model_versions(
                    f"name = '{spec.registered_model_name}'"
                )
            )
            tags = tracking.version_of(spec.registered_model_name, str(newest)).tags
            assert TAG_COMPLETE not in tags, f"marked complete before write {n} of {writes}"
    # the evaluation judges the last complete version, and a registration that finishes moves on
    assert evaluate_challenger(spec, table, tracking).challenger_version == first.version
    again = _register(tracking, spec, fitted, table, tmp_path, run="rdone000")
    assert (
        tracking.version_by_alias(spec.registered_model_name, CHALLENGER).version == again.version
    )


@pytest.mark.parametrize(
    "missing", [TAG_HOLDOUT_ARTIFACT, TAG_TEST_METRICS, TAG_COMPLETE, "holdout artifact"]
)
def test_a_half_registered_challenger_is_refused_by_the_evaluation_and_the_champion(
    spec, table, fitted, tmp_path, missing
):
    """An alias pointing at a half-made version (moved by hand, or by a release that moved it
    before tagging): the evaluation would otherwise judge the refit on rows it trained on."""
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    name = spec.registered_model_name
    logged = _register(tracking, spec, fitted, table, tmp_path)
    client = tracking.client()
    if missing == "holdout artifact":
        run = client.get_run(logged.run_id)
        holdout = Path(run.info.artifact_uri.removeprefix("file://")) / "holdout" / "model.txt"
        holdout.unlink()
    else:
        client.delete_model_version_tag(name, logged.version, missing)

    with pytest.raises(IncompleteVersionError, match=f"version {logged.version} of {name}") as err:
        evaluate_challenger(spec, table, tracking)
    assert missing in str(err.value)

    # Even with a passed gate recorded on it, the champion alias does not move to it.
    client.set_model_version_tag(name, logged.version, TAG_GATE, "passed")
    with pytest.raises(IncompleteVersionError, match=missing):
        move_champion(tracking, name, logged.version, "promoted", "test")
    assert tracking.version_by_alias(name, CHAMPION) is None
    # A deliberate rollback may go to a version registered before the completion marker existed
    # (nothing else missing), never to one that lacks what the gate or monitoring read.
    if missing == TAG_COMPLETE:
        rollback(tracking, name, logged.version, "test: a version from before the marker")
        assert tracking.version_by_alias(name, CHAMPION).version == logged.version
    else:
        with pytest.raises(IncompleteVersionError, match=missing):
            rollback(tracking, name, logged.version, "test")
        assert tracking.version_by_alias(name, CHAMPION) is None


def test_a_sampled_training_set_records_its_rule_on_the_run_and_the_version(spec, table, tmp_path):
    """What the spec's sampling rule did travels with the training set (its Arrow metadata) to
    the MLflow run's params and tag and to the registered version's tag; the weights train."""
    sample = Sample(
        rule="train window capped at 900 rows", rate=0.5, train_rows_before=1600,
        train_rows_after=900, train_positives=200,
    )  # fmt: skip
    weight = np.where(table.column("_split").to_numpy(zero_copy_only=False) == "train", 2.0, 1.0)
    sampled = table.append_column(WEIGHT_COLUMN, pa.array(weight)).replace_schema_metadata(
        {METADATA_KEY: json.dumps(asdict(sample))}
    )
    fitted_sampled = fit(spec, sampled)
    assert fitted_sampled.weight is not None
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = _register(tracking, spec, fitted_sampled, sampled, tmp_path)
    run = tracking.client().get_run(logged.run_id)
    assert run.data.params["sampling_rate"] == "0.5"
    assert run.data.params["sampling_train_rows_before"] == "1600"
    assert json.loads(run.data.tags[TAG_TRAINING_SAMPLE]) == asdict(sample)
    version = tracking.version_of(spec.registered_model_name, logged.version)
    assert json.loads(version.tags[TAG_TRAINING_SAMPLE])["train_rows_after"] == 900
    # and a training set without the rule logs none of it
    plain = _register(tracking, spec, fit(spec, table), table, tmp_path, run="rplain00")
    assert "sampling_rate" not in tracking.client().get_run(plain.run_id).data.params
