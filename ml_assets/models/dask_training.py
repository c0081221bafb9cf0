"""LightGBM trained and applied on a Dask cluster: `lightgbm.dask` for the fit, dask dataframe
partitions for the scores. No Dagster; dask, distributed and lightgbm are imported inside the
functions.

The recipe is `train.fit`'s: the same feature frame (`to_frame`, categories taken from the whole
training set, so every partition codes a category the same way), the same split, the same
LightGBM parameters, early stopping on the validation window, then the refit on every window for
the held-out model's best iteration. What comes back is a `train.Fitted` holding plain LightGBM
Boosters: registration, evaluation and scoring cannot tell where it was trained.

Early stopping needs one thing `lightgbm.dask` does not give: every worker must stop at the same
round, or the ones still boosting wait for the others for ever. LightGBM evaluates the validation
set each worker holds, so each worker is given the *whole* validation window (one copy per
worker): the model is the same on every worker (data-parallel trees), the validation rows are the
same, so the metric, the best round and the stop are the same everywhere, and equal to what one
process would compute on that window.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ml_assets.models.spec import ModelSpec
from ml_assets.models.train import (
    LABEL_COLUMN,
    WEIGHT_COLUMN,
    Fitted,
    Trained,
    _importance,
    lightgbm_params,
    predict,
    split_of,
    to_frame,
    weights_of,
)


@dataclass(frozen=True)
class Placement:
    """Which worker holds which training partition (worker address -> partitions)."""

    partitions: dict[str, int]

    @property
    def machines(self) -> int:
        """How many workers hold training rows: the LightGBM machines of the fit."""
        return sum(1 for n in self.partitions.values() if n)


def workers_of(client) -> list[str]:
    """The cluster's worker addresses, sorted (the order partitions are placed in)."""
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise RuntimeError(f"the Dask cluster at {client.scheduler.address} has no worker")
    return workers


def interleaved(rows: int, parts: int) -> list[np.ndarray]:
    """Row positions of `rows` dealt round-robin into `parts` parts (sizes differ by at most one;
    a part is empty when there are fewer rows than parts).

    Dealt, not cut into contiguous runs: the training set is in time order, and each LightGBM
    machine finds the bins of some features from its own rows, so every part should look like
    the whole."""
    positions = np.arange(rows)
    return [positions[i::parts] for i in range(parts)]


def _scattered_frame(client, frames: list, workers: list[str]):
    """A dask dataframe whose partition i is `frames[i]`, already held by `workers[i]`.

    Scattered to a named worker, not left to the scheduler: two small partitions could otherwise
    both land on one worker, and the fit would quietly run on one machine."""
    import dask.dataframe as dd

    futures = [
        client.scatter(frame, workers=[worker], hash=False)
        for frame, worker in zip(frames, workers)
    ]
    return dd.from_delayed(futures, meta=frames[0].iloc[:0], verify_meta=False)


def _dask_model(client, spec: ModelSpec, frame, label, rounds: int, validation=None, weight=None):
    """One `lightgbm.dask` fit of `frame` / `label` (rows weighted by `weight`, if given) for up
    to `rounds` rounds, with early stopping on `validation` (a (frame, label) pair) when given;
    returns (model, placement)."""
    import lightgbm as lgb
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    workers = workers_of(client)
    # lightgbm.dask sets each worker's own thread count (its Dask threads).
    params, _ = lightgbm_params(spec, num_threads=0)
    params.pop("num_threads")
    factory = DaskLGBMClassifier if spec.objective == "binary" else DaskLGBMRegressor
    model = factory(client=client, n_estimators=rounds, **params)
    data = frame.assign(**{LABEL_COLUMN: label})
    if weight is not None:
        data = data.assign(**{WEIGHT_COLUMN: weight})
    chunks = [data.iloc[rows] for rows in interleaved(len(data), len(workers))]
    placed = [(c, w) for c, w in zip(chunks, workers) if len(c)]
    train = _scattered_frame(client, [c for c, _ in placed], [w for _, w in placed])
    placement = Placement({w: int(any(w == p for _, p in placed)) for w in workers})
    kwargs: dict = {"categorical_feature": list(spec.categorical)}
    if weight is not None:
        kwargs["sample_weight"] = train[WEIGHT_COLUMN]
    if validation is not None:
        valid = validation[0].assign(**{LABEL_COLUMN: validation[1]})
        # One whole copy of the validation window per training partition (see the module's
        # docstring): lightgbm.dask gives validation partition i to training partition i.
        copies = _scattered_frame(client, [valid] * len(placed), [w for _, w in placed])
        kwargs.update(
            eval_X=(copies[list(frame.columns)],),
            eval_y=(copies[LABEL_COLUMN],),
            eval_names=["validation"],
            callbacks=[lgb.early_stopping(spec.early_stopping_rounds, verbose=False)],
        )
    # lightgbm.dask waits on its parts through the current client, not the model's.
    with client.as_current(), warnings.catch_warnings():
        # the scikit-learn wrapper's n_jobs, which lightgbm.dask replaces as said above
        warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored")
        model.fit(train[list(frame.columns)], train[LABEL_COLUMN], **kwargs)
    # (the scattered partitions are released with their futures when this returns)
    return model, placement


def _trained(model, rounds: int, with_validation: bool) -> Trained:
    """A `train.Trained` from a fitted lightgbm.dask model: its plain Booster and figures."""
    booster = model.booster_
    best = (model.best_iteration_ or rounds) if with_validation else rounds
    validation_metric = float("nan")
    if with_validation:
        (values,) = model.evals_result_["validation"].values()
        validation_metric = float(values[best - 1])
    return Trained(
        booster=booster,
        best_iteration=best,
        validation_metric=validation_metric,
        feature_importance=_importance(booster),
    )


def fit_on_dask(client, spec: ModelSpec, table: pa.Table) -> tuple[Fitted, Placement]:
    """`train.fit` on the cluster behind `client`: the held-out model (train window, early
    stopping on the validation window) and, when the spec asks, its refit on every window.
    Also returns where the training rows were placed."""
    frame = to_frame(table, spec)
    split = split_of(table)
    label = table.column(LABEL_COLUMN).to_numpy()
    weight = weights_of(table)  # a sampled training set's (validation rows weigh 1)
    train_rows, valid_rows = split == "train", split == "validation"
    if not train_rows.any() or not valid_rows.any():
        raise ValueError(
            f"{spec.name}: the time split left {train_rows.sum()} training and "
            f"{valid_rows.sum()} validation rows; more matured data is needed"
        )
    _, rounds = lightgbm_params(spec, num_threads=0)
    model, placement = _dask_model(
        client,
        spec,
        frame[train_rows],
        label[train_rows],
        rounds,
        validation=(frame[valid_rows], label[valid_rows]),
        weight=None if weight is None else weight[train_rows],
    )
    trained = _trained(model, rounds, with_validation=True)
    served = trained
    if spec.split.refit:
        # The model that serves: the same recipe refit on every matured day (`train.refit`).
        refitted, _ = _dask_model(client, spec, frame, label, trained.best_iteration, weight=weight)
        served = _trained(refitted, trained.best_iteration, with_validation=False)
    # num_threads: none of this process's; the workers' own are the cluster's setting
    return Fitted(trained, served, frame, split, num_threads=0, weight=weight), placement


def predict_on_dask(client, booster, frame, partitions: int) -> np.ndarray:
    """`train.predict(booster, frame)`, computed on the cluster: the frame cut into `partitions`
    dask dataframe partitions, each scored by the booster (sent once to every worker)."""
    import dask.dataframe as dd

    if len(frame) == 0:
        return np.asarray(predict(booster, frame))
    shipped = client.scatter(booster, broadcast=True, hash=False)
    parts = dd.from_pandas(frame, npartitions=max(1, min(partitions, len(frame))), sort=False)
    scores = parts.map_partitions(
        _predict_partition, shipped, meta=("score", "float64"), enforce_metadata=False
    )
    return np.asarray(client.compute(scores).result(), dtype=float)


def _predict_partition(part, booster):
    """One partition's scores, indexed like the partition (what map_partitions concatenates)."""
    import pandas as pd

    return pd.Series(predict(booster, part), index=part.index, name="score")
