"""The drift reference of a model version: a sample of the rows the served model was fitted on,
with its own scores on them. Drift of a scored day is measured against it.

No Dagster, no MLflow: the model asset logs what `drift_reference` returns with the run, and the
benchmark floor calls the same function.
"""

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from ml_assets.models.spec import ModelSpec
from ml_assets.models.train import Fitted, predict

REFERENCE_ROWS = 20_000


@dataclass(frozen=True)
class Reference:
    """The reference rows (the spec's features plus `score`) and the days they come from."""

    frame: object
    window: str
    """first..last event date of the reference days"""


def drift_reference(spec: ModelSpec, fitted: Fitted, days: np.ndarray) -> Reference:
    """At most REFERENCE_ROWS rows (sampled with the spec's seed) of the newest
    `monitoring.drift.reference_days` the served model was fitted on, scored by it.

    `days` is the training set's event dates (`train.event_days`)."""
    # The newest days of the training window, where every history feature (7-day counts, 30-day
    # averages) has a full history behind it.
    train_days = days[fitted.served_rows]
    recent = train_days >= max(train_days) - timedelta(
        days=spec.monitoring.drift.reference_days - 1
    )
    rows = fitted.served_frame[recent]
    if fitted.weight is not None:
        rows = _unweighted(rows, fitted.weight[fitted.served_rows][recent], spec)
    if len(rows) > REFERENCE_ROWS:
        rows = rows.sample(n=REFERENCE_ROWS, random_state=int(spec.lightgbm.get("seed", 0)))
    return Reference(
        frame=rows.assign(score=predict(fitted.served.booster, rows)),
        window=f"{min(train_days[recent])}..{max(train_days)}",
    )


def _unweighted(rows, weight: np.ndarray, spec: ModelSpec):
    """Rows of a sampled training set thinned to a plain sample of the days they come from: a
    row of weight w is kept with probability w / max(w), so every row ends at the lowest rate
    (else a classifier's kept positives would weigh in the reference as if all rows were)."""
    if weight.max() == weight.min():
        return rows
    draw = np.random.default_rng(int(spec.lightgbm.get("seed", 0))).random(len(weight))
    return rows[draw < weight / weight.max()]
