"""A registered model version loaded for serving: the raw LightGBM booster, its feature order
and categorical vocabulary, and what `GET /v1/models/{name}` says about it.

Scores equal batch scores (`ml_assets.scores.scoring`) by construction: batch scoring hands
LightGBM a pandas frame whose categorical columns LightGBM maps onto the vocabulary stored in
the model (`pandas_categorical`: a category's position, NaN for one it never saw) and whose
booleans become 0.0 / 1.0; here the same mapping fills a numpy row, and LightGBM predicts it
with one thread (its default threading costs tens of milliseconds at p99 on a single row).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from headwater_core.names import TAG_TEST_METRICS, TAG_TRAINED_THROUGH

# LightGBM's threads per prediction call: a single row gains nothing from more, and its default
# threading costs tens of milliseconds at p99. (Passed per call: `reset_parameter` on a booster
# loaded from a model file crashes LightGBM 4.)
PREDICT_THREADS = 1


@dataclass(frozen=True)
class ServedModel:
    """One version of one registered model, ready to predict."""

    name: str  # the spec's name, e.g. fraud_classifier
    registered_name: str  # headwater.fraud_classifier
    version: str
    alias: str
    booster: object
    features: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]  # categorical feature -> its vocabulary, in order
    info: dict = field(default_factory=dict)  # training window, metrics, run id
    # what a request carries for this version (its categories): set with the version, so that a
    # request is checked and scored by one version even while the next one is swapped in
    request_fields: dict = field(default_factory=dict)

    def matrix(self, rows: list[dict]) -> np.ndarray:
        """The rows' features as a float64 matrix in the booster's feature order."""
        codes = {c: {v: float(i) for i, v in enumerate(vs)} for c, vs in self.categories.items()}
        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        for i, row in enumerate(rows):
            for j, name in enumerate(self.features):
                value = row.get(name)
                if name in codes:
                    out[i, j] = codes[name].get(value, math.nan) if value is not None else math.nan
                elif value is None:
                    out[i, j] = math.nan
                else:
                    out[i, j] = float(value)
        return out

    def predict(self, rows: list[dict]) -> list[float]:
        """One score per row (feature dicts by name)."""
        matrix = self.matrix(rows)
        scores = self.booster.predict(
            matrix,
            num_iteration=getattr(self.booster, "best_iteration", None) or None,
            num_threads=PREDICT_THREADS,
        )
        return [float(s) for s in np.asarray(scores).reshape(-1)]


def categories_of(booster, categorical) -> dict[str, tuple[str, ...]]:
    """Each categorical feature's vocabulary, as the model stored it when trained on pandas
    categories: `pandas_categorical` lists them in the order the categorical columns come in the
    training frame, which is the feature order (`ml_assets.models.train.to_frame`)."""
    stored = getattr(booster, "pandas_categorical", None) or []
    columns = [f for f in booster.feature_name() if f in set(categorical)]
    if len(columns) != len(stored):
        raise ValueError(
            f"the model stores {len(stored)} categorical vocabularies for {len(columns)} "
            f"categorical features ({columns}): it was not trained from this spec's frame"
        )
    return {name: tuple(vocab) for name, vocab in zip(columns, stored)}


def version_info(tracking, registered_name: str, version) -> dict:
    """What the model endpoint shows of a version: its training window and test metrics, from
    the tags and the run the platform wrote at registration (ml_assets.models.mlflow_run)."""
    tags = dict(version.tags)
    run = tracking.client().get_run(version.run_id)
    params = run.data.params
    metrics = json.loads(tags.get(TAG_TEST_METRICS) or "{}")
    return {
        "run_id": version.run_id,
        "trained_through": tags.get(TAG_TRAINED_THROUGH),
        "training_window": {
            split: params.get(f"window_{split}")
            for split in ("train", "validation", "test")
            if params.get(f"window_{split}")
        },
        "refit_on_all_windows": params.get("refit_on_all_windows") == "True",
        "test_metrics": metrics,
    }


def load_served(tracking, spec, version, alias: str) -> ServedModel:
    """Load a registered version (a `VersionRef`) of `spec`'s model for serving."""
    from ml_assets.models.tracking import load_booster

    name = spec.registered_model_name
    booster = load_booster(tracking, name, version.version)
    return ServedModel(
        name=spec.name,
        registered_name=name,
        version=version.version,
        alias=alias,
        booster=booster,
        features=tuple(booster.feature_name()),
        categories=categories_of(booster, spec.categorical),
        info=version_info(tracking, name, version),
    )
