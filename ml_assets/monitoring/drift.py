"""Feature and prediction drift between a reference and a current frame, with Evidently 0.7.

Pure functions, no Dagster: `compute_drift` runs one Evidently Report (DataDriftPreset over the
model features plus ValueDrift for the prediction column), reads every column's drift score,
method, threshold and verdict from the snapshot, and optionally writes the report as HTML and
JSON. Evidently and pandas are imported inside the functions so that loading the code location
stays fast.

Evidently picks the stat test per column (its default selection): with more than 1,000
non-null reference values, "Wasserstein distance (normed)" for numeric columns with more than
5 distinct values and "Jensen-Shannon distance" for categorical and low-cardinality numeric
ones, both drifted at distance >= 0.1; with fewer reference values, p-value tests
(K-S, chi-square, Z-test) drifted at p < 0.05. So a score is a distance or a p-value depending
on `method`; the verdict is always Evidently's own.

Evidently refuses a column that has no values on one side (its whole report fails), so such
columns are left out of the report (so also out of its HTML and JSON) and judged by a rule
here instead; see `_null_column_drift`.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Method names reported for columns Evidently cannot test because a side has no values.
NULL_ON_ONE_SIDE = "all null on one side"
NULL_ON_BOTH_SIDES = "all null on both sides"

_VALUE_DRIFT_TYPE = "evidently:metric_v2:ValueDrift"


@dataclass(frozen=True)
class FeatureDrift:
    column: str
    method: str  # the stat test Evidently used, e.g. "Wasserstein distance (normed)"
    score: float  # a p-value or a distance, depending on `method`
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]  # one per model feature, in the order given
    prediction: FeatureDrift
    reference_rows: int  # rows compared, after sampling
    current_rows: int  # rows compared, after sampling
    current_rows_total: int  # rows of the current frame before sampling
    sampled: bool  # either side was sampled

    @property
    def drifted_features(self) -> int:
        return sum(f.drifted for f in self.features)

    @property
    def drift_share(self) -> float:
        return self.drifted_features / len(self.features) if self.features else 0.0

    def headline(self) -> dict[str, Any]:
        """The numbers worth a glance (asset metadata, logs), as a JSON-able dict."""
        return {
            "drift_share": self.drift_share,
            "drifted_features": self.drifted_features,
            "drifted_feature_names": [f.column for f in self.features if f.drifted],
            "prediction_drift_score": _json_float(self.prediction.score),
            "prediction_drift_method": self.prediction.method,
            "prediction_drifted": self.prediction.drifted,
            "feature_scores": {f.column: _json_float(f.score) for f in self.features},
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "current_rows_total": self.current_rows_total,
            "sampled": self.sampled,
        }


def _json_float(value: float) -> float | None:
    # NaN and inf are not JSON; Evidently should not produce them, but a headline must serialise.
    return value if math.isfinite(value) else None


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, bool]:
    """Deterministic uniform sample without replacement (same seed, same rows); returns
    (frame, sampled?). Rows keep their original order."""
    import numpy as np

    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    if len(frame) <= max_rows:
        return frame, False
    positions = np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False)
    return frame.iloc[np.sort(positions)], True


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    categorical: Sequence[str],
    prediction: str = "score",
    max_rows: int = 5000,
    seed: int = 0,
    html_path: Path | None = None,
    json_path: Path | None = None,
) -> DriftResult:
    """Drift of every feature and of the prediction column, current against reference.

    Features listed in `categorical`, and any whose reference values are boolean or not numeric,
    are compared as categorical; the rest as numeric (nulls allowed). Each side is sampled to at
    most `max_rows` rows first. The Evidently report goes to `html_path` / `json_path` if given.
    """
    features = list(features)
    columns = list(dict.fromkeys([*features, prediction]))
    _check_inputs(reference, current, columns)

    ref, ref_sampled = sample_rows(reference, max_rows, seed)
    cur, cur_sampled = sample_rows(current, max_rows, seed)
    declared = set(categorical)
    kinds = {c: _column_kind(reference[c], current[c], c in declared) for c in columns}
    ref = _normalise(ref, kinds)
    cur = _normalise(cur, kinds)

    # Evidently fails the whole report on a column with no values on one side.
    null_rule = {
        c: _null_column_drift(c, ref[c], cur[c])
        for c in columns
        if _no_values(ref[c]) or _no_values(cur[c])
    }
    testable = [c for c in columns if c not in null_rule]

    snapshot = _run_report(ref, cur, kinds, testable, [c for c in testable if c in features])
    measured = _value_drifts(snapshot.dict())
    missing = [c for c in testable if c not in measured]
    if missing:
        raise RuntimeError(f"Evidently returned no drift result for columns {missing}")
    by_column = measured | null_rule

    if html_path is not None:
        _write_atomically(Path(html_path), snapshot.get_html_str(as_iframe=False))
    if json_path is not None:
        _write_atomically(Path(json_path), snapshot.json())

    return DriftResult(
        features=tuple(by_column[f] for f in features),
        prediction=by_column[prediction],
        reference_rows=len(ref),
        current_rows=len(cur),
        current_rows_total=len(current),
        sampled=ref_sampled or cur_sampled,
    )


def _check_inputs(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> None:
    for side, frame in (("reference", reference), ("current", current)):
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValueError(f"drift: the {side} frame has no column(s) {absent}")
        if len(frame) == 0:
            raise ValueError(f"drift: the {side} frame has 0 rows, nothing to compare")


def _column_kind(reference: pd.Series, current: pd.Series, declared_categorical: bool) -> str:
    import pandas as pd

    # The reference (training-time data) decides, unless it has no values to go by.
    column = reference if reference.notna().any() else current
    values = column.dropna()
    if declared_categorical or pd.api.types.is_bool_dtype(column):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column):
        return "numerical"
    # Object columns: None among booleans or numbers makes pandas fall back to object dtype.
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal", "empty"):
        return "numerical"
    return "categorical"


def _normalise(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Only the compared columns, in dtypes Evidently's tests handle: float64 for numeric (so
    nullable Int64 and pd.NA become NaN), pandas category for categorical (string, object and
    boolean columns alike; as object, Evidently's inf-cleaning trips pandas' downcasting
    FutureWarning on every boolean column)."""
    import pandas as pd

    out = {
        c: _as_float(frame[c]) if kind == "numerical" else frame[c].astype("category")
        for c, kind in kinds.items()
    }
    return pd.DataFrame(out).reset_index(drop=True)


def _as_float(values: pd.Series) -> pd.Series:
    import pandas as pd

    try:
        return pd.to_numeric(values).astype("float64")
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"drift: column {values.name!r} is numeric in the reference but holds non-numeric "
            f"values; declare it categorical ({e})"
        ) from e


def _no_values(column: pd.Series) -> bool:
    # Evidently drops NaN and +-inf before testing, so a column of only those is empty to it.
    import numpy as np
    import pandas as pd

    values = column.dropna()
    if pd.api.types.is_float_dtype(values):
        values = values[np.isfinite(values)]
    return values.empty


def _null_column_drift(column: str, reference: pd.Series, current: pd.Series) -> FeatureDrift:
    """The rule for a column with no values on a side. All null on one side only: drifted, with
    the difference between the sides' shares of non-null rows as the score (1.0 when the other
    side has no nulls at all). All null on both sides: nothing changed, score 0, not drifted."""
    ref_share = 1.0 - reference.isna().mean()
    cur_share = 1.0 - current.isna().mean()
    both = _no_values(reference) and _no_values(current)
    score = 0.0 if both else abs(float(ref_share - cur_share))
    return FeatureDrift(
        column=column,
        method=NULL_ON_BOTH_SIDES if both else NULL_ON_ONE_SIDE,
        score=score,
        threshold=0.0,
        drifted=not both,
    )


def _run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    columns: list[str],
    features: list[str],
):
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    # Every list given explicitly: left as None, Evidently infers types from dtypes (ints with
    # <= 10 distinct values become categorical, object columns may become text).
    definition = DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] == "numerical"],
        categorical_columns=[c for c in columns if kinds[c] == "categorical"],
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    metrics: list = []
    if features:
        # An empty `columns` would mean "all columns" to the preset.
        metrics.append(DataDriftPreset(columns=features))
    metrics += [ValueDrift(column=c) for c in columns if c not in features]
    # include_tests makes each ValueDrift carry Evidently's drifted / not-drifted verdict.
    report = Report(metrics, include_tests=True)
    return report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def _value_drifts(snapshot: dict) -> dict[str, FeatureDrift]:
    """Per-column drift from `Snapshot.dict()`, keyed by column name.

    A ValueDrift metric's config holds the column and the method and threshold Evidently
    resolved; its value is the score. The verdict is the metric's test ("FAIL" = drifted),
    matched to the metric by its id."""
    verdicts = {
        test["metric_config"]["metric_id"]: test["status"] == "FAIL"
        for test in snapshot["tests"]
        if test.get("metric_config", {}).get("params", {}).get("type") == _VALUE_DRIFT_TYPE
    }
    drifts = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if config.get("type") != _VALUE_DRIFT_TYPE:
            continue
        if metric["id"] not in verdicts:
            raise RuntimeError(f"Evidently gave no drift verdict for column {config['column']!r}")
        drifts[config["column"]] = FeatureDrift(
            column=config["column"],
            method=str(config["method"]),
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            drifted=verdicts[metric["id"]],
        )
    return drifts


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and a rename, so a reader never sees a
    half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        # mkstemp creates the file owner-only; a report is for anyone who can read the folder.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
