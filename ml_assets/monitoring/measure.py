"""Measuring a scored day: the steps of the monitoring assets as plain functions over a DuckDB
connection, with no Dagster and no MLflow resource, so the benchmark floor runs the same code.

Drift of a day: `read_scored_day` (the day's scored rows and their features; `window` reads the
spec's current window and a same-period reference), `scored_frame`, `load_reference` (the
scoring version's training sample, cached), `measure_drift` (Evidently's drift and the check's
verdict) and `write_drift` (the day's rows of `monitoring.drift`).

Performance of a day: `read_performance_day` (the day's scores and matured labels, and the
trailing window the check judges), `measure_performance` (realised metrics and the verdict) and
`write_performance` (the day's rows of `monitoring.performance`).

Both tables hold one set of rows per model and day: writing a day again replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from headwater_core.names import (
    DRIFT_TABLE,
    PERFORMANCE_TABLE,
    REFERENCE_ARTIFACT,
    scores_table,
)
from ml_assets.models.bootstrap import Interval
from ml_assets.models.spec import ModelSpec, ident, table_ref
from ml_assets.monitoring.drift import DriftResult, compute_drift
from ml_assets.monitoring.judge import (
    Verdict,
    enough_labels,
    importance_share,
    judge_drift,
    judge_performance,
    realised_interval,
    realised_metrics,
)
from ml_assets.monitoring.window import read_scored_rows

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

DRIFT_COLUMNS = (
    "model varchar, day date, model_version varchar, column_name varchar, "
    "is_prediction boolean, method varchar, score double, threshold double, "
    "drifted boolean, importance double, computed_at timestamp"
)
PERFORMANCE_COLUMNS = (
    "model varchar, day date, model_version varchar, metric varchar, value double, "
    "test_window_value double, computed_at timestamp, lower double, upper double, "
    "n_labels integer"
)
# Added after the first release: a table written before gets them (appended, so the positional
# insert of `replace_rows` still lines up).
_PERFORMANCE_ADDED = ("lower double", "upper double", "n_labels integer")


class NotMeasurable(Exception):
    """A day whose performance cannot be measured (yet): nothing scored, or labels not matured."""

    def __init__(self, message: str, nothing_scored: bool = False):
        super().__init__(message)
        self.nothing_scored = nothing_scored


def scoring_version(rows: pa.Table) -> str:
    """The version that scored the rows: the last of their `model_version`s in sorted order."""
    return sorted(set(rows.column("model_version").to_pylist()))[-1]


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: str,
    model: str,
    day: str,
    rows: list[tuple],
) -> None:
    """Replace one model's day in a monitoring table (re-running a day is idempotent)."""
    schema = table.split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    con.execute(f"create table if not exists {table} ({columns})")
    con.execute("begin transaction")
    con.execute(f"delete from {table} where model = $1 and day = $2", [model, day])
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"insert into {table} values ({marks})", rows)
    con.execute("commit")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# -- drift ---------------------------------------------------------------------------------------


def read_scored_day(con: duckdb.DuckDBPyConnection, spec: ModelSpec, day: str) -> pa.Table:
    """The rows the model scored on `day`: their features, `score` and `model_version`."""
    return read_scored_rows(con, spec, day, day)


def scored_frame(rows: pa.Table, spec: ModelSpec) -> pd.DataFrame:
    """The scored rows as the drift test compares them: the model's feature frame and `score`."""
    from ml_assets.models.train import to_frame

    return to_frame(rows, spec).assign(score=rows.column("score").to_numpy())


def load_reference(
    folder: Path,
    version: str,
    run_id: str,
    tracking_uri: str | None = None,
    artifact: str = REFERENCE_ARTIFACT,
) -> pd.DataFrame:
    """A version's drift reference (the `artifact` logged with its MLflow run: its own, or one
    re-based after a refused challenger), downloaded once into `folder` (the model's artifact
    folder) and read from there afterwards."""
    import pandas as pd

    # A re-based reference is another file of the same version: cached under its own name.
    rebased = "" if artifact == REFERENCE_ARTIFACT else f"_{Path(artifact).stem}"
    cached = folder / f"reference_v{version}{rebased}.parquet"
    if not cached.exists():
        import mlflow

        downloaded = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=artifact,
            dst_path=str(cached.parent / f".download_v{version}"),
            tracking_uri=tracking_uri,
        )
        Path(downloaded).replace(cached)
    return pd.read_parquet(cached)


@dataclass(frozen=True)
class DriftMeasurement:
    result: DriftResult
    drifted: list[str]  # the drifted features
    share: float  # the share of the model's importance the drifted features carry
    verdict: Verdict


def measure_drift(
    spec: ModelSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    importance: dict[str, float],
    html_path: Path | None = None,
    json_path: Path | None = None,
) -> DriftMeasurement:
    """Drift of a scored day (`scored_frame`) against the version's reference, with the spec's
    sampling, and the drift check's verdict weighed by the version's feature `importance`. The
    Evidently report goes to `html_path` / `json_path` if given."""
    rule = spec.monitoring.drift
    if len(reference) and reference["score"].isna().all():
        # A same-period reference from before the model scored: its prediction has no values.
        rule = replace(rule, exempt=(*rule.exempt, "score"))
    result = compute_drift(
        reference,
        current,
        features=spec.features,
        categorical=spec.categorical,
        max_rows=rule.sample_rows,
        seed=int(spec.lightgbm.get("seed", 0)),
        html_path=html_path,
        json_path=json_path,
        rule=rule,
    )
    drifted = [f.column for f in result.features if f.drifted]
    share = importance_share(drifted, importance, spec.features)
    verdict = judge_drift(rule, share, drifted, len(result.features), result.shortfall)
    return DriftMeasurement(result=result, drifted=drifted, share=share, verdict=verdict)


def write_drift(
    con: duckdb.DuckDBPyConnection,
    model: str,
    day: str,
    version: str,
    result: DriftResult,
    importance: dict[str, float],
    table: str = DRIFT_TABLE,
) -> None:
    """The day's rows of `monitoring.drift` (or `table`, of the same columns): one per feature
    and one for the prediction."""
    computed_at = _now()
    rows = [
        (model, day, version, f.column, f is result.prediction, f.method)
        + (f.score, f.threshold, f.drifted, importance.get(f.column), computed_at)
        for f in (*result.features, result.prediction)
    ]
    replace_rows(con, table, DRIFT_COLUMNS, model, day, rows)


# -- performance ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceDay:
    rows: pa.Table  # the day's scored rows: score, model_version, label, matures_at
    window: pa.Table  # the trailing window the check judges: score, label
    version: str  # the version that scored the day
    matures_at: datetime  # when the day's last label matured


def label_value(spec: ModelSpec) -> str:
    """The label as SQL over the label table `l`, as known when it matured."""
    label = spec.label
    value = f"l.{ident(label.column)}"
    if label.known_at:
        # as known when the label matured: a later report does not count
        known, matures = ident(label.known_at), ident(label.matures_at)
        value = f"({value} and coalesce(l.{known} <= l.{matures}, true))"
    return value


def day_after(value) -> datetime:
    """Midnight after a timestamp's (or date's) day."""
    day = value.date() if isinstance(value, datetime) else value
    return datetime.combine(day + timedelta(days=1), datetime.min.time())


def read_performance_day(
    con: duckdb.DuckDBPyConnection,
    spec: ModelSpec,
    day: str,
    served: str | None = None,
    known_until: datetime | None = None,
) -> PerformanceDay:
    """The day's scores (or the `served` predictions' table's) with their matured labels, and
    the trailing window of the check.

    Raises NotMeasurable when nothing was scored on `day`, or when its labels mature after the
    newest data of the feature set, or after `known_until` if given (a replay's "now": its
    warehouse holds the future too)."""
    name, label = spec.name, spec.label
    value = label_value(spec)
    keys = ", ".join(ident(k) for k in spec.keys)
    scored = served or scores_table(name)
    joined = f"from {scored} s join {table_ref(label.table)} l using ({keys})"
    matures = f"l.{ident(label.matures_at)}"
    rows = con.sql(
        f"select s.score, s.model_version, cast({value} as double) as label, "
        f"{matures} as matures_at {joined} "
        "where cast(s.event_time as date) = $1",
        params=[day],
    ).to_arrow_table()
    ((data_until,),) = con.sql(
        f"select max({ident(spec.event_time)}) from {table_ref(spec.feature_set)}"
    ).fetchall()
    if rows.num_rows == 0:
        raise NotMeasurable(
            f"{name}: nothing scored on {day}, so no performance to measure", nothing_scored=True
        )
    matures_at = max(rows.column("matures_at").to_pylist())
    # The newest event's day has landed whole: data reaches midnight after it.
    data_until = day_after(data_until) if data_until is not None else None
    if known_until is not None and data_until is not None:
        data_until = min(data_until, known_until)
    if data_until is None or matures_at > data_until:
        raise NotMeasurable(
            f"{name}: the labels of {day} mature at {matures_at}, but "
            f"{spec.feature_set} holds data up to {data_until}; materialise this day "
            "after that"
        )
    version = scoring_version(rows)
    # The check judges the trailing window (this day and the days before it that the same
    # version scored and whose labels have matured): one day is too few positives.
    window_days = spec.monitoring.performance.window_days
    first_day = (date.fromisoformat(day) - timedelta(days=window_days - 1)).isoformat()
    window = con.sql(
        f"select s.score, cast({value} as double) as label {joined} "
        "where cast(s.event_time as date) between $1 and $2 and s.model_version = $3 "
        f"and {matures} <= $4",
        params=[first_day, day, version, data_until],
    ).to_arrow_table()
    return PerformanceDay(rows=rows, window=window, version=version, matures_at=matures_at)


@dataclass(frozen=True)
class PerformanceMeasurement:
    metrics: dict[str, float]  # the day's realised metrics
    labels: int  # the day's matured labels
    window: Interval  # the check's metric on the trailing window, with its interval
    window_positives: int | None  # the trailing window's positive labels (a classifier's)
    enough_labels: bool  # the window holds enough labels to be judged
    positives: int | None  # the day's positive labels (a classifier's)
    reference: float  # the check's metric on the version's test window
    seen_in_training: bool  # the version was trained on the day
    verdict: Verdict


def measure_performance(
    spec: ModelSpec,
    day: str,
    measured: PerformanceDay,
    test_metrics: dict[str, float],
    trained_through: str,
) -> PerformanceMeasurement:
    """Realised performance of a day, the check's metric with its bootstrap interval over the
    trailing window, and the decay check's verdict against the scoring version's
    `test_metrics` (not judged on a day up to `trained_through`, the last day the version was
    trained on)."""
    rule = spec.monitoring.performance
    binary = spec.objective == "binary"
    y = measured.rows.column("label").to_numpy()
    metrics = realised_metrics(spec, y, measured.rows.column("score").to_numpy())
    window_y = measured.window.column("label").to_numpy()
    window = realised_interval(spec, window_y, measured.window.column("score").to_numpy())
    window_positives = int(window_y.sum()) if binary else None
    reference = float(test_metrics.get(rule.metric, float("nan")))
    seen = day <= trained_through
    verdict = judge_performance(rule, reference, window, window_positives, seen_in_training=seen)
    return PerformanceMeasurement(
        metrics=metrics,
        labels=len(y),
        window=window,
        window_positives=window_positives,
        enough_labels=enough_labels(rule, window.n, window_positives),
        positives=int(y.sum()) if binary else None,
        reference=reference,
        seen_in_training=seen,
        verdict=verdict,
    )


def write_performance(
    con: duckdb.DuckDBPyConnection,
    spec: ModelSpec,
    day: str,
    version: str,
    measured: PerformanceMeasurement,
    test_metrics: dict[str, float],
    table: str = PERFORMANCE_TABLE,
) -> None:
    """The day's rows of `monitoring.performance` (or `table`, of the same columns): one per
    realised metric of the day (beside
    the same metric on the version's test window), and one for the check's metric over the
    trailing window (`<metric>_trailing_<N>d`) with its interval and count of matured labels."""
    rule = spec.monitoring.performance
    computed_at = _now()
    rows = [
        (spec.name, day, version, m, v, test_metrics.get(m), computed_at)
        + (None, None, measured.labels)
        for m, v in measured.metrics.items()
    ]
    w = measured.window
    rows.append(
        (spec.name, day, version, f"{rule.metric}_trailing_{rule.window_days}d", w.value)
        + (test_metrics.get(rule.metric), computed_at, w.lower, w.upper, w.n)
    )
    con.execute(f"create schema if not exists {table.split('.')[0]}")
    con.execute(f"create table if not exists {table} ({PERFORMANCE_COLUMNS})")
    for column in _PERFORMANCE_ADDED:
        con.execute(f"alter table {table} add column if not exists {column}")
    replace_rows(con, table, PERFORMANCE_COLUMNS, spec.name, day, rows)
