"""Training sets and LightGBM training: small functions over Arrow tables, no Dagster, no MLflow.

The training set is read from DuckDB as Arrow; LightGBM gets a pandas frame built once from it
(category dtype is how LightGBM keeps the categorical vocabulary inside the model, so scoring
needs no separate encoder).
"""

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from headwater_core.compute import prepare_openmp, training_threads
from ml_assets.models.spec import ModelSpec, SplitSpec, ident, table_ref

SPLIT_COLUMN = "_split"
LABEL_COLUMN = "_label"
EVENT_DATE_COLUMN = "_event_date"
# A row's training weight, present only in a sampled training set (`ml_assets.models.sampling`)
WEIGHT_COLUMN = "_weight"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Windows:
    """Half-open [start, end) event-date windows of the time split; train may start at None."""

    train: tuple[date | None, date]
    validation: tuple[date, date]
    test: tuple[date, date]

    def as_dict(self) -> dict[str, str]:
        return {
            f"{name}_{edge}": (value.isoformat() if value else "")
            for name in SPLITS
            for edge, value in zip(("start", "end"), getattr(self, name))
        }


def split_windows(last_matured_day: date, split: SplitSpec) -> Windows:
    """The spec's pinned windows, or windows counted back from the last day whose labels have
    matured."""
    if split.pinned:
        day = timedelta(days=1)
        train, validation, test = split.train, split.validation, split.test
        return Windows(
            (train.start, train.end + day),
            (validation.start, validation.end + day),
            (test.start, test.end + day),
        )
    end = last_matured_day + timedelta(days=1)
    test_start = end - timedelta(days=split.test_days)
    validation_start = test_start - timedelta(days=split.validation_days)
    train_start = validation_start - timedelta(days=split.train_days) if split.train_days else None
    return Windows(
        (train_start, validation_start), (validation_start, test_start), (test_start, end)
    )


def training_set_sql(spec: ModelSpec, since: bool = False) -> str:
    """Matured rows of the feature set with their label as known at the cut-off ($cutoff); with
    `since`, only events on or after the day $since (the training window's start). In event
    time order."""
    keys = ", ".join(f"f.{ident(k)}" for k in spec.keys)
    return f"""{training_rows_sql(spec, since)}
        order by f.{ident(spec.event_time)}, {keys}
    """


def training_rows_sql(spec: ModelSpec, since: bool = False) -> str:
    """`training_set_sql`'s rows in no particular order (its `f` alias still in scope)."""
    keys = ", ".join(f"f.{ident(k)}" for k in spec.keys)
    features = ", ".join(f"f.{ident(c)}" for c in spec.features if c not in spec.keys)
    event_time = f"f.{ident(spec.event_time)}"
    label = f"l.{ident(spec.label.column)}"
    if spec.label.known_at:
        # a label that only became known after the cut-off is unknown, hence negative
        label = f"({label} and coalesce(l.{ident(spec.label.known_at)} <= $cutoff, true))"
    return f"""
        select {keys}, {event_time} as _event_time,
               cast({event_time} as date) as {EVENT_DATE_COLUMN},
               {features}, cast({label} as double) as {LABEL_COLUMN}
        {_matured_from(spec, since)}
    """


def last_matured_day_sql(spec: ModelSpec) -> str:
    """The newest event day of the matured rows at the cut-off ($cutoff): where the time split's
    windows are counted back from. Reads the keys and times only, not the features."""
    return f"select max(cast(f.{ident(spec.event_time)} as date)) {_matured_from(spec, False)}"


def _matured_from(spec: ModelSpec, since: bool) -> str:
    join = " and ".join(f"f.{ident(k)} = l.{ident(k)}" for k in spec.keys)
    event_time = f"f.{ident(spec.event_time)}"
    window = f"and {event_time} >= cast($since as date)" if since else ""
    return f"""
        from {table_ref(spec.feature_set)} f
        join {table_ref(spec.label.table)} l on {join}
        where l.{ident(spec.label.matures_at)} <= $cutoff
          and {event_time} <= $cutoff
          {window}
    """


def assign_splits(table: pa.Table, windows: Windows) -> pa.Table:
    """Add the split column; rows outside every window are dropped."""
    days = event_days(table).astype("datetime64[D]")
    split = np.full(len(days), "", dtype=object)
    for name in SPLITS:
        start, end = getattr(windows, name)
        inside = days < np.datetime64(end)
        if start is not None:
            inside &= days >= np.datetime64(start)
        split[inside & (split == "")] = name
    table = table.append_column(SPLIT_COLUMN, pa.array(split.tolist(), pa.string()))
    return table.filter(pa.compute.not_equal(table.column(SPLIT_COLUMN), ""))


def write_training_set(table: pa.Table, path: Path) -> str:
    """Write the training set as Parquet; returns its data version (sha256 of the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:16]
    tmp.replace(path)
    return digest


def to_frame(table: pa.Table, spec: ModelSpec):
    """Feature matrix for LightGBM: the spec's features, categoricals as pandas categories."""
    frame = table.select(list(spec.features)).to_pandas()
    for column in spec.categorical:
        frame[column] = frame[column].astype("category")
    for column in frame.columns:
        if frame[column].dtype == bool or frame[column].dtype == object:
            if column not in spec.categorical:
                frame[column] = frame[column].astype("float64")
    return frame


def lightgbm_params(spec: ModelSpec, num_threads: int) -> tuple[dict, int]:
    """LightGBM parameters made deterministic for a given seed and data, with `num_threads`
    (`headwater_core.compute.training_threads`: one for a small training set)."""
    params = dict(spec.lightgbm)
    rounds = int(params.pop("num_boost_round", 500))
    params.setdefault("objective", "binary" if spec.objective == "binary" else "regression")
    params.update(
        deterministic=True,
        force_row_wise=True,
        num_threads=num_threads,
        verbosity=-1,
        seed=int(params.get("seed", 42)),
    )
    return params, rounds


@dataclass
class Trained:
    booster: object
    best_iteration: int
    validation_metric: float
    feature_importance: dict[str, float]


def train(spec: ModelSpec, table: pa.Table, frame=None, num_threads: int = 0) -> Trained:
    """Fit LightGBM on the train split with early stopping on the validation split.

    `frame` is `to_frame(table, spec)` if the caller has it already (at 10M transactions each
    copy of the fraud training set is ~1 GB); `num_threads` 0 is `training_threads` of the
    table's rows."""
    prepare_openmp()
    import lightgbm as lgb

    split = split_of(table)
    label = table.column(LABEL_COLUMN).to_numpy()
    frame = to_frame(table, spec) if frame is None else frame
    train_rows, valid_rows = split == "train", split == "validation"
    if not train_rows.any() or not valid_rows.any():
        raise ValueError(
            f"{spec.name}: the time split left {train_rows.sum()} training and "
            f"{valid_rows.sum()} validation rows; more matured data is needed"
        )
    params, rounds = lightgbm_params(spec, num_threads or training_threads(table.num_rows))
    weight = weights_of(table)
    # The raw rows are freed once LightGBM has binned them (free_raw_data, the default).
    train_set = lgb.Dataset(
        frame[train_rows],
        label[train_rows],
        weight=None if weight is None else weight[train_rows],
        categorical_feature=list(spec.categorical),
    )
    valid_set = lgb.Dataset(
        frame[valid_rows],
        label[valid_rows],
        weight=None if weight is None else weight[valid_rows],
        reference=train_set,
        categorical_feature=list(spec.categorical),
    )
    evals: dict = {}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=rounds,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(spec.early_stopping_rounds, verbose=False),
            lgb.record_evaluation(evals),
        ],
    )
    (metric_name,) = evals["validation"].keys()
    best = booster.best_iteration or rounds
    # The booster would otherwise keep both binned datasets for as long as it lives.
    booster.free_dataset()
    return Trained(
        booster=booster,
        best_iteration=best,
        validation_metric=float(evals["validation"][metric_name][best - 1]),
        feature_importance=_importance(booster),
    )


def refit(
    spec: ModelSpec, table: pa.Table, rounds: int, frame=None, num_threads: int = 0
) -> Trained:
    """Fit LightGBM on every row of the training set (train, validation and test) for a fixed
    number of rounds: the held-out model's best iteration.

    The held-out model is what the gate judges; this is the model that serves. Without it the
    newest matured days, the ones most like tomorrow's traffic, would only ever be validation
    and test rows, and a change in the world would reach the model's training data two split
    windows late."""
    prepare_openmp()
    import lightgbm as lgb

    label = table.column(LABEL_COLUMN).to_numpy()
    params, _ = lightgbm_params(spec, num_threads or training_threads(table.num_rows))
    frame = to_frame(table, spec) if frame is None else frame
    booster = lgb.train(
        params,
        lgb.Dataset(
            frame, label, weight=weights_of(table), categorical_feature=list(spec.categorical)
        ),
        num_boost_round=rounds,
    )
    booster.free_dataset()
    return Trained(
        booster=booster,
        best_iteration=rounds,
        validation_metric=float("nan"),
        feature_importance=_importance(booster),
    )


@dataclass
class Fitted:
    """A spec's models fitted on one training set: the held-out model (`trained`: fitted on the
    train window, early-stopped on the validation window) and the model that serves (`served`:
    `trained` itself, or its refit on every window), with the feature frame and split they were
    fitted from."""

    trained: Trained
    served: Trained
    frame: object
    split: np.ndarray
    num_threads: int = 1
    weight: np.ndarray | None = None
    """Each row's training weight (`weights_of`; None: every row weighs 1)."""

    @property
    def refitted(self) -> bool:
        return self.served is not self.trained

    @cached_property
    def served_rows(self) -> np.ndarray:
        """The rows the served model was fitted on."""
        return np.ones(len(self.split), dtype=bool) if self.refitted else self.split == "train"

    @cached_property
    def served_frame(self):
        """The served model's rows of `frame`."""
        # No copy of every row when every row was fitted (a boolean index always copies).
        return self.frame if self.refitted else self.frame[self.served_rows]


def fit(spec: ModelSpec, table: pa.Table, threads: int = 0, small_rows: int = -1) -> Fitted:
    """The held-out model and, when the spec asks for it, its refit on every window (`refit`);
    the feature frame is built once and shared by both. `threads` and `small_rows` are the
    resource's settings (`headwater_core.compute.training_threads`)."""
    num_threads = training_threads(table.num_rows, threads, small_rows)
    frame = to_frame(table, spec)
    trained = train(spec, table, frame, num_threads)
    # The model that serves: the same recipe refit on every matured day (see `refit`).
    served = (
        refit(spec, table, trained.best_iteration, frame, num_threads)
        if spec.split.refit
        else trained
    )
    return Fitted(trained, served, frame, split_of(table), num_threads, weights_of(table))


def split_of(table: pa.Table) -> np.ndarray:
    """The training set's split column as an array of "train", "validation" and "test"."""
    return table.column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)


def weights_of(table: pa.Table) -> np.ndarray | None:
    """The training set's row weights: 1/rate for a row kept by the spec's sampling rule at
    that rate, 1 for every other row; None when the set was not sampled."""
    if WEIGHT_COLUMN not in table.column_names:
        return None
    return table.column(WEIGHT_COLUMN).to_numpy()


def event_days(table: pa.Table) -> np.ndarray:
    """The training set's event dates (datetime64[D])."""
    return table.column(EVENT_DATE_COLUMN).to_numpy(zero_copy_only=False)


def _importance(booster) -> dict[str, float]:
    """Each feature's share of the model's total gain."""
    gains = booster.feature_importance(importance_type="gain")
    total = float(gains.sum()) or 1.0
    return {name: float(g) / total for name, g in zip(booster.feature_name(), gains)}


def predict(booster, frame, num_threads: int = 0) -> np.ndarray:
    """The booster's predictions for `frame`, with `num_threads` (0: `training_threads` of its
    rows; a loaded booster would otherwise take every core)."""
    return np.asarray(
        booster.predict(
            frame,
            num_iteration=getattr(booster, "best_iteration", None),
            num_threads=num_threads or training_threads(len(frame)),
        )
    )
