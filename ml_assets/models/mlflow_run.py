"""A training run in MLflow: params, metrics, windows, a plot, dataset lineage, the drift
reference, the served model and its held-out twin; the new registered version is tagged with what
the gate, monitoring and rollback read back, marked complete, and only then made the challenger.

mlflow is imported inside the functions. The Dagster run and asset a run came from arrive as a
plain `RunOrigin`, so the logging does not depend on an execution context.
"""

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from headwater_core.names import (
    CHALLENGER,
    FEATURE_IMPORTANCE_ARTIFACT,
    HOLDOUT_ARTIFACT,
    REFERENCE_ARTIFACT,
    TAG_COMPLETE,
    TAG_FEATURE_IMPORTANCE,
    TAG_HOLDOUT_ARTIFACT,
    TAG_MODEL,
    TAG_TEST_METRICS,
    TAG_TRAINED_THROUGH,
    TAG_TRAINING_DATA_VERSION,
    TAG_TRAINING_SAMPLE,
    experiment_name,
)
from ml_assets.models.plots import feature_importance_svg
from ml_assets.models.reference import drift_reference
from ml_assets.models.sampling import sample_of
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking, training_dataset
from ml_assets.models.train import (
    EVENT_DATE_COLUMN,
    LABEL_COLUMN,
    SPLITS,
    Fitted,
    event_days,
    lightgbm_params,
    predict,
)


@dataclass(frozen=True)
class RunOrigin:
    """The Dagster run, asset and code version a training run was made by."""

    run_id: str
    asset_key: str
    code_version: str


@dataclass(frozen=True)
class LoggedRun:
    """The MLflow run of a training and the model version it registered."""

    version: str
    run_id: str
    experiment_id: str


def log_training_run(
    tracking: MlflowTracking,
    spec: ModelSpec,
    fitted: Fitted,
    table,
    *,
    source: Path,
    data_version: str,
    metrics: dict[str, float],
    origin: RunOrigin,
) -> LoggedRun:
    """One MLflow run of a training; the new version is the challenger.

    `fitted.trained` is the held-out model (`metrics` are its test-window metrics);
    `fitted.served` is what the registered version predicts with. `table` is the training set
    read from `source`, whose data version is `data_version`."""
    tags = {
        "dagster.run_id": origin.run_id,
        "dagster.asset_key": origin.asset_key,
        "dagster.code_version": origin.code_version,
        TAG_MODEL: spec.name,
        TAG_TRAINING_DATA_VERSION: data_version,
    }
    sample = sample_of(table)
    if sample is not None:
        # the spec's sampling rule and what it kept of the train window (validation and test
        # are whole), on the run and on the version
        tags[TAG_TRAINING_SAMPLE] = json.dumps(asdict(sample), sort_keys=True)
    days = event_days(table)
    run_name = f"{spec.name}-{origin.run_id[:8]}"
    with tracking.start_run(experiment_name(spec.name), run_name, tags) as run:
        _log_params_and_metrics(spec, fitted, metrics, sample.as_metadata() if sample else {})
        _log_windows(spec, fitted.split, days)
        _log_feature_importance(spec, fitted)
        _log_dataset(spec, fitted, table, source, data_version)
        _log_reference(spec, fitted, days)
        if fitted.refitted:
            _log_holdout(fitted.trained.booster)
        info = _log_model(spec, fitted)
        logged = LoggedRun(
            version=str(info.registered_model_version),
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
        )
    version_tags = {**tags, **_version_tags(spec, fitted, table, metrics)}
    _register_challenger(tracking, spec, logged.version, version_tags)
    return logged


def _log_params_and_metrics(
    spec: ModelSpec, fitted: Fitted, metrics: dict[str, float], sampling: dict
) -> None:
    import mlflow

    if sampling:
        mlflow.log_params(sampling)  # the sampling rule's rate and rows (`sampling.Sample`)

    params, rounds = lightgbm_params(spec, fitted.num_threads)
    mlflow.log_params({**params, "num_boost_round": rounds, "features": ",".join(spec.features)})
    mlflow.log_param("best_iteration", fitted.trained.best_iteration)
    mlflow.log_param("refit_on_all_windows", fitted.refitted)
    mlflow.log_metric("validation_metric", fitted.trained.validation_metric)
    mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})


def _log_windows(spec: ModelSpec, split: np.ndarray, days: np.ndarray) -> None:
    """The table trained on, and each split's rows and first..last event date."""
    import mlflow

    mlflow.log_param("training_table", spec.feature_set)
    for name in SPLITS:
        rows = split == name
        mlflow.log_metric(f"rows_{name}", int(rows.sum()))
        mlflow.log_param(f"window_{name}", f"{days[rows].min()}..{days[rows].max()}")


def _log_feature_importance(spec: ModelSpec, fitted: Fitted) -> None:
    import mlflow

    svg = feature_importance_svg(spec.name, fitted.served.feature_importance)
    mlflow.log_text(svg, FEATURE_IMPORTANCE_ARTIFACT)


def _log_dataset(spec: ModelSpec, fitted: Fitted, table, source: Path, data_version: str) -> None:
    """Lineage: the rows the served model was fitted on, as the run's training input."""
    import mlflow
    import pandas as pd

    frame = fitted.served_frame
    labels = pd.Series(table.column(LABEL_COLUMN).to_numpy()[fitted.served_rows], index=frame.index)
    dataset = training_dataset(
        pd.concat([frame, labels.rename(LABEL_COLUMN)], axis=1, copy=False),
        source=str(source),
        name=f"{spec.feature_set}@{data_version}",
        targets=LABEL_COLUMN,
        digest=data_version or None,
    )
    mlflow.log_input(dataset, context="training")


def _log_reference(spec: ModelSpec, fitted: Fitted, days: np.ndarray) -> None:
    """The drift reference, stored with the run as Parquet (REFERENCE_ARTIFACT)."""
    import mlflow

    reference = drift_reference(spec, fitted, days)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(REFERENCE_ARTIFACT).name
        reference.frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
    mlflow.log_param("window_drift_reference", reference.window)


def _log_holdout(booster) -> None:
    """The held-out twin of a refit model, stored with the run in LightGBM's own text format."""
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(HOLDOUT_ARTIFACT).name
        booster.save_model(str(path))
        mlflow.log_artifact(str(path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))


def _log_model(spec: ModelSpec, fitted: Fitted):
    """The served model, registered as a new version of the spec's registered model."""
    import mlflow
    from mlflow.models import infer_signature

    example = fitted.frame.head(5)
    booster = fitted.served.booster
    return mlflow.lightgbm.log_model(
        booster,
        name="model",
        signature=infer_signature(example, predict(booster, example)),
        input_example=example,
        registered_model_name=spec.registered_model_name,
        # Declared, not inferred: inference would resolve the environment at every run.
        pip_requirements=["lightgbm", "pandas<3", "numpy"],
    )


def _version_tags(
    spec: ModelSpec, fitted: Fitted, table, metrics: dict[str, float]
) -> dict[str, str]:
    tags = {
        # The version's own test-window metrics: realised performance is judged against them.
        TAG_TEST_METRICS: json.dumps(metrics, sort_keys=True),
        # the last day whose labels it was trained or selected on: realised performance starts
        # after
        TAG_TRAINED_THROUGH: str(pc.max(table.column(EVENT_DATE_COLUMN)).as_py()),
        # and its importance: drift is weighed by it
        TAG_FEATURE_IMPORTANCE: json.dumps(
            {f: round(g, 6) for f, g in fitted.served.feature_importance.items()}, sort_keys=True
        ),
    }
    if fitted.refitted:
        # the gate judges this twin, not the refit (which has seen the test window)
        tags[TAG_HOLDOUT_ARTIFACT] = HOLDOUT_ARTIFACT
    return tags


def _register_challenger(
    tracking: MlflowTracking, spec: ModelSpec, version: str, tags: dict[str, str]
) -> None:
    """Tag the new version, mark it complete, and only then move the challenger alias to it.

    Registration is one decision: a process dying anywhere before the last step leaves the alias
    on the previous complete version, and the half-tagged version is never judged or promoted
    (`registry.require_complete`)."""
    client = tracking.client()
    for key, value in tags.items():
        client.set_model_version_tag(spec.registered_model_name, version, key, value)
    client.set_model_version_tag(spec.registered_model_name, version, TAG_COMPLETE, "true")
    client.set_registered_model_alias(spec.registered_model_name, CHALLENGER, version)
