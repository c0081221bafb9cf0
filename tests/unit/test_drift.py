"""Drift detection (ml_assets.monitoring.drift) against real Evidently on synthetic frames whose
drift, or lack of it, is known by construction."""

import json

import numpy as np
import pandas as pd
import pytest

from ml_assets.models.drift_spec import DriftSpec
from ml_assets.monitoring import drift as drift_module
from ml_assets.monitoring.drift import (
    NULL_ON_BOTH_SIDES,
    NULL_ON_ONE_SIDE,
    DriftResult,
    compute_drift,
    sample_rows,
)

FEATURES = ["amount", "age", "tenure", "channel", "is_new"]
CATEGORICAL = ["channel"]


def make_frame(
    n: int,
    seed: int,
    amount_shift: float = 0.0,
    new_channel_share: float = 0.0,
    score_shift: float = 0.0,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n) + amount_shift
    amount[rng.random(n) < 0.05] = np.nan  # numeric features may hold nulls
    channel = rng.choice(["web", "app", "pos"], n).astype(object)
    channel[rng.random(n) < new_channel_share] = "kiosk"
    return pd.DataFrame(
        {
            "amount": amount,
            "age": rng.integers(18, 90, n),
            "tenure": rng.normal(24.0, 6.0, n),
            "channel": pd.Categorical(channel),
            "is_new": rng.random(n) < 0.3,
            "score": np.clip(rng.beta(2.0, 5.0, n) + score_shift, 0.0, 1.0),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_frame(3000, seed=1)


def drift(reference: pd.DataFrame, current: pd.DataFrame, **kwargs) -> DriftResult:
    return compute_drift(reference, current, FEATURES, CATEGORICAL, **kwargs)


def drifted_columns(result: DriftResult) -> set[str]:
    return {f.column for f in result.features if f.drifted}


def test_same_distribution_is_not_drift(reference):
    result = drift(reference, make_frame(3000, seed=2))

    assert [f.column for f in result.features] == FEATURES
    assert drifted_columns(result) == set()
    assert result.drift_share == 0.0
    assert not result.prediction.drifted
    # Evidently's defaults for > 1,000 reference rows: distances, drifted at >= 0.1.
    methods = {f.column: f.method for f in result.features}
    assert methods["amount"] == "Wasserstein distance (normed)"
    assert methods["channel"] == methods["is_new"] == "Jensen-Shannon distance"
    assert all(f.threshold == 0.1 and 0.0 <= f.score < 0.1 for f in result.features)
    assert (result.reference_rows, result.current_rows, result.sampled) == (3000, 3000, False)


def test_shifted_feature_and_new_category_are_drift(reference):
    current = make_frame(3000, seed=2, amount_shift=40.0, new_channel_share=0.3)

    result = drift(reference, current)

    assert drifted_columns(result) == {"amount", "channel"}
    assert result.drifted_features == 2
    assert result.drift_share == pytest.approx(2 / len(FEATURES))
    assert not result.prediction.drifted
    headline = result.headline()
    assert headline["drifted_feature_names"] == ["amount", "channel"]
    assert set(headline["feature_scores"]) == set(FEATURES)
    assert headline["feature_scores"]["amount"] >= 0.1
    json.dumps(headline, allow_nan=False)


def test_shifted_prediction_is_drift(reference):
    result = drift(reference, make_frame(3000, seed=2, score_shift=0.2))

    assert result.prediction.column == "score"
    assert result.prediction.drifted
    assert result.headline()["prediction_drifted"] is True
    assert drifted_columns(result) == set()


def test_small_reference_uses_p_values_and_evidently_verdict():
    # Up to 1,000 reference rows Evidently switches to p-value tests, where a LOW score is
    # drift: the verdict must be Evidently's, not "score >= threshold".
    result = compute_drift(
        make_frame(800, seed=1), make_frame(800, seed=2, amount_shift=40.0), FEATURES, CATEGORICAL
    )

    amount, age = result.features[0], result.features[1]
    assert amount.method == age.method == "K-S p_value"
    assert amount.threshold == 0.05
    assert amount.drifted and amount.score < amount.threshold
    assert not age.drifted and age.score >= age.threshold


def test_sampling_is_bounded_and_deterministic(reference):
    current = make_frame(20_000, seed=3)

    first = drift(reference, current, max_rows=2000, seed=5)
    again = drift(reference, current, max_rows=2000, seed=5)

    assert first.current_rows == 2000
    assert first.current_rows_total == 20_000
    assert first.reference_rows == 2000
    assert first.sampled
    assert first == again


def test_sample_rows():
    frame = pd.DataFrame({"x": range(100)})

    sample, sampled = sample_rows(frame, 10, seed=3)

    assert sampled and len(sample) == 10 and sample["x"].is_unique
    assert sample["x"].is_monotonic_increasing
    assert sample.equals(sample_rows(frame, 10, seed=3)[0])
    assert not sample.equals(sample_rows(frame, 10, seed=4)[0])
    whole, sampled = sample_rows(frame, 100, seed=3)
    assert whole is frame and not sampled


def test_report_files_are_written(reference, tmp_path):
    html = tmp_path / "reports" / "drift.html"
    js = tmp_path / "reports" / "json" / "drift.json"

    drift(reference, make_frame(500, seed=2), html_path=html, json_path=js)

    page = html.read_text(encoding="utf-8").strip()
    assert page.lower().startswith("<!doctype html") and page.endswith("</html>")
    assert "tenure" in page
    report = json.loads(js.read_text(encoding="utf-8"))
    columns = {m["config"].get("column") for m in report["metrics"]}
    assert set(FEATURES) | {"score"} <= columns
    # Only the two reports: no temporary files left beside them.
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["drift.html", "drift.json"]


@pytest.mark.parametrize("figures, drawn", [("drifted", 2), ("all", 6)])
def test_report_draws_figures_for_the_drifted_columns_only_by_default(
    reference, tmp_path, figures, drawn
):
    from evidently.metrics.column_statistics import ValueDriftCalculation

    render = ValueDriftCalculation._render
    html = tmp_path / "drift.html"
    current = make_frame(3000, seed=2, amount_shift=40.0, new_channel_share=0.3)

    result = drift(reference, current, html_path=html, rule=DriftSpec(figures=figures))

    page = html.read_text(encoding="utf-8")
    assert drifted_columns(result) == {"amount", "channel"}
    # every column (5 features and the score) keeps its verdict line; each drawn column has a
    # distribution tab
    assert page.count("Drift in column") == 6
    assert page.count("DATA DISTRIBUTION") == drawn
    # Evidently's own method is back after the report
    assert ValueDriftCalculation._render is render


def test_all_null_columns_and_awkward_dtypes(reference):
    current = make_frame(1500, seed=2)
    current["amount"] = np.nan  # all null on the current side only
    current["age"] = pd.array([None] * 1500, dtype="Int64")
    current["channel"] = current["channel"].astype("string")
    current["is_new"] = current["is_new"].astype(object)
    current.loc[::10, "is_new"] = None
    reference = reference.assign(
        age=reference["age"].astype("Int64").mask(reference.index % 7 == 0),
        tenure=np.nan,
    )
    current["tenure"] = np.nan  # all null on both sides

    result = drift(reference, current)

    by_column = {f.column: f for f in result.features}
    assert by_column["amount"].method == NULL_ON_ONE_SIDE
    assert by_column["amount"].drifted
    assert by_column["amount"].score == pytest.approx(0.95, abs=0.02)  # ~5% of reference null
    assert by_column["age"].method == NULL_ON_ONE_SIDE and by_column["age"].drifted
    assert by_column["tenure"].method == NULL_ON_BOTH_SIDES
    assert not by_column["tenure"].drifted and by_column["tenure"].score == 0.0
    # Still compared by Evidently, as values whatever their dtype.
    assert by_column["channel"].method == by_column["is_new"].method == "Jensen-Shannon distance"
    assert not by_column["channel"].drifted and not by_column["is_new"].drifted
    json.dumps(result.headline(), allow_nan=False)


@pytest.mark.parametrize("side", ["reference", "current"])
def test_missing_feature_column_is_an_error(reference, side):
    frames = {"reference": reference, "current": reference.copy()}
    frames[side] = frames[side].drop(columns=["tenure"])

    with pytest.raises(ValueError, match=rf"{side} frame has no column.*tenure"):
        drift(frames["reference"], frames["current"])


def test_missing_prediction_column_is_an_error(reference):
    with pytest.raises(ValueError, match="current frame has no column.*score"):
        drift(reference, reference.drop(columns=["score"]))


def test_empty_current_is_an_error(reference):
    with pytest.raises(ValueError, match="current frame has 0 rows"):
        drift(reference, reference.iloc[:0])


@pytest.mark.parametrize("shift", [0.0, 40.0])
def test_the_reports_count_of_drifted_features_is_evidentlys_without_computing_drift_twice(
    reference, monkeypatch, shift
):
    """The report's count (`DriftedFeaturesCount`) and its share test equal what Evidently's
    `DriftedColumnsCount` says of the same columns, methods and thresholds; each column's drift
    is computed once (by its `ValueDrift`), not again for the count."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations import data_drift
    from evidently.metrics import DriftedColumnsCount, column_statistics

    computed = []
    one_column = data_drift.get_one_column_drift

    def counted(*args, **kwargs):
        computed.append(kwargs.get("column_name"))
        return one_column(*args, **kwargs)

    current = make_frame(3000, seed=2, amount_shift=shift, new_channel_share=0.3 if shift else 0)
    snapshots = []
    run_report = drift_module._run_report

    def kept(*args, **kwargs):
        snapshots.append(run_report(*args, **kwargs))
        return snapshots[-1]

    monkeypatch.setattr(drift_module, "_run_report", kept)
    # where ValueDrift calls it, and where Evidently's own count (DatasetDriftMetric) does
    monkeypatch.setattr(column_statistics, "get_one_column_drift", counted)
    monkeypatch.setattr(data_drift, "get_one_column_drift", counted)
    result = drift(reference, current)
    assert sorted(computed) == sorted([*FEATURES, "score"])  # once each
    (count,) = [m for m in snapshots[0].dict()["metrics"] if "Count" in m["metric_name"]]
    assert count["value"]["count"] == result.drifted_features
    assert count["value"]["share"] == pytest.approx(result.drift_share)

    # Evidently's own count of the same columns, methods and thresholds (as the report's plan)
    kinds = {
        c: drift_module.column_kind(reference[c], current[c], c in CATEGORICAL) for c in FEATURES
    }
    ref, cur = drift_module.normalise(reference, kinds), drift_module.normalise(current, kinds)
    plans = drift_module.plan_columns(ref, cur, kinds, DriftSpec())
    definition = DataDefinition(
        numerical_columns=[c for c in FEATURES if kinds[c] == "numerical"],
        categorical_columns=[c for c in FEATURES if kinds[c] == "categorical"],
    )
    theirs = DriftedColumnsCount(
        columns=FEATURES,
        per_column_method={c: p.method for c, p in plans.items() if p.method},
        per_column_threshold={c: p.threshold for c, p in plans.items() if p.threshold},
    )
    evidently = Report([theirs]).run(
        Dataset.from_pandas(cur[FEATURES], data_definition=definition),
        Dataset.from_pandas(ref[FEATURES], data_definition=definition),
    )
    (value,) = [m["value"] for m in evidently.dict()["metrics"]]
    assert (value["count"], value["share"]) == (count["value"]["count"], count["value"]["share"])
    assert (value["count"] > 0) == (shift > 0)
