"""Feature and prediction drift between a reference and a current frame, with Evidently 0.7.

Pure functions, no Dagster: `compute_drift` runs one Evidently Report (a `ValueDrift` for each
feature and the prediction, and the count of drifted features, `drift_count.py`), reads every
column's drift score, method, threshold and verdict from the snapshot, and optionally writes the
report as HTML and JSON. Evidently and pandas are imported inside the functions so that loading
the code location stays fast.

The test per column follows its type and cardinality (`drift_methods.plan_columns`): Evidently's
own choice by size for numeric and low-cardinality columns, the top levels plus "other" for
high-cardinality categoricals, none for exempt ones, or the spec's override. A score is a
distance or a p-value depending on `method`; the verdict is always Evidently's own.

Sample size: a window or a reference with fewer than `min_rows` rows is not compared at all,
and a feature with fewer than `min_values` non-null values on a side is not judged; either says
"not enough data" (`DriftResult.shortfall`, `FeatureDrift.compared`) instead of drifting.

Evidently refuses a column that has no values on one side (its whole report fails), so such
columns are left out of the report (so also out of its HTML and JSON) and judged by a rule
here instead; see `_null_column_drift`.

Figures: Evidently draws each column's plotly figures while it computes the column's drift, about
25 ms a column in every scheduled run. By default (`DriftSpec.figures`) only the columns found
drifted get them; the others keep Evidently's verdict line (method, score) in the report
(`drift_figures.py`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_assets.models.drift_spec import DriftSpec
from ml_assets.monitoring.drift_figures import drawn_figures
from ml_assets.monitoring.drift_methods import (
    EXEMPT,
    NOT_ENOUGH_DATA,
    ColumnPlan,
    column_kind,
    fold_levels,
    no_values,
    normalise,
    plan_columns,
)

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
    compared: bool = True  # False: exempt, or not enough data to judge (score and threshold NaN)


@dataclass(frozen=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]  # one per model feature, in the order given
    prediction: FeatureDrift
    reference_rows: int  # rows compared, after sampling
    current_rows: int  # rows compared, after sampling
    current_rows_total: int  # rows of the current frame before sampling
    sampled: bool  # either side was sampled
    shortfall: str | None = None  # why the window was not compared ("not enough data: ...")

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
            "status": self.status,
            "methods": {f.column: f.method for f in self.features},
        }

    @property
    def status(self) -> str:
        return NOT_ENOUGH_DATA if self.shortfall else "compared"


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
    rule: DriftSpec | None = None,
) -> DriftResult:
    """Drift of every feature and of the prediction column, current against reference.

    Features listed in `categorical`, and any whose reference values are boolean or not numeric,
    are compared as categorical; the rest as numeric (nulls allowed). Each side is sampled to at
    most `max_rows` rows first. `rule` (the spec's `monitoring.drift`, default settings if None)
    gives the sample-size minimums, the exempt features and the per-feature methods. The
    Evidently report goes to `html_path` / `json_path` if given.
    """
    rule = rule or DriftSpec()
    features = list(features)
    columns = list(dict.fromkeys([*features, prediction]))
    _check_inputs(reference, current, columns)
    if min(len(reference), len(current)) < rule.min_rows:
        reports = (html_path, json_path)
        return _not_enough_data(reference, current, features, prediction, rule, *reports)

    ref, ref_sampled = sample_rows(reference, max_rows, seed)
    cur, cur_sampled = sample_rows(current, max_rows, seed)
    declared = set(categorical)
    kinds = {c: column_kind(reference[c], current[c], c in declared) for c in columns}
    ref = normalise(ref, kinds)
    cur = normalise(cur, kinds)

    exempt = set(rule.exempt)
    # Evidently fails the whole report on a column with no values on one side.
    null_rule = {
        c: _null_column_drift(c, ref[c], cur[c])
        for c in columns
        if c not in exempt and (no_values(ref[c]) or no_values(cur[c]))
    }
    plans = plan_columns(ref, cur, {c: k for c, k in kinds.items() if c not in null_rule}, rule)
    skipped = {c: _not_compared(c, p.skip) for c, p in plans.items() if p.skip is not None}
    plans = {c: p for c, p in plans.items() if p.skip is None}
    for column, plan in plans.items():
        if plan.levels is not None:
            ref[column] = fold_levels(ref[column], plan.levels)
            cur[column] = fold_levels(cur[column], plan.levels)
    testable = list(plans)

    with drawn_figures(rule.figures):
        snapshot = _run_report(ref, cur, kinds, plans, [c for c in testable if c in features])
    measured = _value_drifts(snapshot.dict(), plans)
    missing = [c for c in testable if c not in measured]
    if missing:
        raise RuntimeError(f"Evidently returned no drift result for columns {missing}")
    by_column = measured | null_rule | skipped

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


def _not_compared(column: str, why: str) -> FeatureDrift:
    return FeatureDrift(column, why, math.nan, math.nan, drifted=False, compared=False)


def _not_enough_data(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    prediction: str,
    rule: DriftSpec,
    html_path: Path | None,
    json_path: Path | None,
) -> DriftResult:
    """The result for a window or reference below `rule.min_rows`: nothing compared, nothing
    drifted, and a report that says so."""
    shortfall = (
        f"{NOT_ENOUGH_DATA}: {len(current)} rows in the window and {len(reference)} in the "
        f"reference, at least {rule.min_rows} needed on each side"
    )
    exempt = set(rule.exempt)
    result = DriftResult(
        features=tuple(
            _not_compared(f, EXEMPT if f in exempt else NOT_ENOUGH_DATA) for f in features
        ),
        prediction=_not_compared(prediction, NOT_ENOUGH_DATA),
        reference_rows=len(reference),
        current_rows=len(current),
        current_rows_total=len(current),
        sampled=False,
        shortfall=shortfall,
    )
    if html_path is not None:
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Drift: not enough data"
            f"</title></head><body><h1>Drift: not enough data</h1><p>{shortfall}.</p>"
            "<p>No test was run; the drift check passes without judging.</p></body></html>"
        )
        _write_atomically(Path(html_path), page)
    if json_path is not None:
        _write_atomically(Path(json_path), json.dumps(result.headline(), allow_nan=False))
    return result


def _check_inputs(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> None:
    for side, frame in (("reference", reference), ("current", current)):
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValueError(f"drift: the {side} frame has no column(s) {absent}")
    # An empty reference (a cycle earlier than the data) is "not enough data"; an empty current
    # frame is a caller's mistake: there is no scored day to measure.
    if len(current) == 0:
        raise ValueError("drift: the current frame has 0 rows, nothing to compare")


def _null_column_drift(column: str, reference: pd.Series, current: pd.Series) -> FeatureDrift:
    """The rule for a column with no values on a side. All null on one side only: drifted, with
    the difference between the sides' shares of non-null rows as the score (1.0 when the other
    side has no nulls at all). All null on both sides: nothing changed, score 0, not drifted."""
    ref_share = 1.0 - reference.isna().mean()
    cur_share = 1.0 - current.isna().mean()
    both = no_values(reference) and no_values(current)
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
    plans: dict[str, ColumnPlan],
    features: list[str],
):
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    from ml_assets.monitoring.drift_count import DriftedFeaturesCount

    columns = list(plans)
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
    drifts = [
        ValueDrift(column=c, method=plans[c].method, threshold=plans[c].threshold) for c in columns
    ]
    metrics: list = []
    if features:
        # The count of drifted features first, as `DataDriftPreset` puts it, without the preset:
        # its render computes every column's drift again with Evidently's legacy
        # `DataDriftTable` and draws that table's figures, dropping the ones each `ValueDrift`
        # drew (0.4-0.9 s per report at 5,000 rows a side and 17 columns). Nor Evidently's
        # `DriftedColumnsCount`, which computes them again too: `DriftedFeaturesCount` counts
        # the `ValueDrift` verdicts (drift_count.py).
        metrics.append(DriftedFeaturesCount(drifts=[d for d in drifts if d.column in features]))
    metrics += drifts
    # include_tests makes each ValueDrift carry Evidently's drifted / not-drifted verdict.
    report = Report(metrics, include_tests=True)
    return report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def _value_drifts(snapshot: dict, plans: dict[str, ColumnPlan]) -> dict[str, FeatureDrift]:
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
            method=plans[config["column"]].label(str(config["method"])),
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
