"""A tiny real world for the service's tests: a model spec, a training set, real LightGBM
models registered through the platform's own code (`log_training_run`, `move_champion`) in an
MLflow store in a temporary folder, and a free port of the service's range."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

DAYS = 20
PER_DAY = 30
KINDS = ("a", "b", "c")
# the ports the service's tests may use
PORTS = range(18600, 18700)

TINY_SPEC = {
    "name": "tiny",
    "description": "A tiny classifier for the service's tests.",
    "feature_set": "features.tiny",
    "keys": ["id"],
    "event_time": "event_time",
    "score_date": "event_date",
    "label": {"table": "features.tiny_labels", "column": "y", "matures_at": "at"},
    "objective": "binary",
    "features": ["x1", "x2", "flag", "kind"],
    "categorical": ["kind"],
    "baseline_feature": "x1",
    "split": {"test_days": 4, "validation_days": 4, "refit": True},
    "lightgbm": {"num_boost_round": 15, "seed": 1, "min_data_in_leaf": 5},
    "early_stopping_rounds": 50,
    "promotion": {"metric": "roc_auc", "min_improvement": 0.0},
}


def free_service_port() -> int:
    """A port of the service's range that nothing listens on right now."""
    from bench.serve import free_port

    return free_port(PORTS.start, len(PORTS))


def write_spec(folder: Path) -> Path:
    """A folder of model specs holding the tiny spec alone."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yml").write_text(yaml.safe_dump(TINY_SPEC))
    return folder


def training_table(seed: int = 0) -> pa.Table:
    """A training set as `training_set` writes it: features, label, split, event date."""
    rng = np.random.default_rng(seed)
    day_index = np.repeat(np.arange(DAYS), PER_DAY)
    rows = len(day_index)
    days = [date(2025, 1, 1) + timedelta(days=int(d)) for d in day_index]
    x1 = rng.normal(size=rows)
    kind = rng.choice(KINDS, rows)
    split = np.where(
        day_index >= DAYS - 4, "test", np.where(day_index >= DAYS - 8, "validation", "train")
    )
    return pa.table(
        {
            "id": [f"r{i}" for i in range(rows)],
            "_event_time": days,
            "_event_date": days,
            "x1": x1,
            "x2": rng.normal(size=rows),
            "flag": rng.random(rows) < 0.3,
            "kind": kind,
            "_label": (x1 + (kind == "a") + rng.normal(scale=0.5, size=rows) > 1.0).astype(float),
            "_split": split,
        }
    )


def register(tracking, spec, table, seed: int, run: str) -> str:
    """Fit the spec (LightGBM seed `seed`) and register it; returns the new version (the
    challenger)."""
    from ml_assets.models.evaluate import metrics_on_test_window
    from ml_assets.models.mlflow_run import RunOrigin, log_training_run
    from ml_assets.models.train import fit

    spec = dataclasses.replace(
        spec, lightgbm={**spec.lightgbm, "seed": seed, "bagging_fraction": 0.7, "bagging_freq": 1}
    )
    fitted = fit(spec, table)
    logged = log_training_run(
        tracking,
        spec,
        fitted,
        table,
        source=Path("training_set.parquet"),
        data_version=f"v{seed}",
        metrics=metrics_on_test_window(spec, table, fitted.frame, fitted.trained.booster),
        origin=RunOrigin(run_id=run, asset_key="models/tiny/model", code_version="c"),
    )
    return logged.version


def request_rows(table: pa.Table, n: int) -> list[dict]:
    """The first `n` rows of the table as request rows (keys, score date and features)."""
    out = []
    for row in table.slice(0, n).to_pylist():
        out.append(
            {
                "id": row["id"],
                "event_date": row["_event_date"].isoformat(),
                **{f: row[f] for f in TINY_SPEC["features"]},
            }
        )
    return out


def batch_scores(tracking, spec, version: str, table: pa.Table, n: int) -> list[float]:
    """What batch scoring gives the first `n` rows with a version (ml_assets.scores)."""
    from ml_assets.models.tracking import load_booster
    from ml_assets.models.train import predict, to_frame

    booster = load_booster(tracking, spec.registered_model_name, version)
    return [float(s) for s in predict(booster, to_frame(table.slice(0, n), spec))]
