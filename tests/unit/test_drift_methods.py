"""The drift test per feature (type and cardinality, exempt, spec overrides) and the sample-size
guard, against real Evidently on synthetic frames whose drift, or lack of it, is known by
construction (issue 15, item 1)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ml_assets.models.drift_spec import DriftSpec
from ml_assets.monitoring.drift import compute_drift
from ml_assets.monitoring.drift_methods import EXEMPT, NOT_ENOUGH_DATA
from ml_assets.monitoring.judge import judge_drift

LEVELS = [f"station_{i:03d}" for i in range(260)]
# Zipf-like popularity, as stations or merchants have: a few busy levels, a long tail.
WEIGHTS = 1.0 / np.arange(1, 261) ** 0.8
WEIGHTS /= WEIGHTS.sum()


def frame(n: int, seed: int, shift: float = 0.0, weather_shift: float = 0.0) -> pd.DataFrame:
    """`x` numeric, `weather` 4 levels, `station` 260 levels, `hour` a calendar column; `shift`
    moves x, `weather_shift` moves mass to weather 3, and either moves the score."""
    rng = np.random.default_rng(seed)
    weather_p = np.array([0.6, 0.3, 0.1, 0.0]) * (1 - weather_shift) + [0, 0, 0, weather_shift]
    return pd.DataFrame(
        {
            "x": rng.normal(10.0 + shift, 2.0, n),
            "weather": pd.Categorical(rng.choice(["1", "2", "3", "4"], n, p=weather_p)),
            "station": pd.Categorical(rng.choice(LEVELS, n, p=WEIGHTS)),
            "hour": rng.integers(0, 24, n) if shift == 0 else rng.integers(0, 6, n),
            "score": rng.beta(2.0, 5.0, n),
        }
    )


FEATURES = ["x", "weather", "station", "hour"]
CATEGORICAL = ["weather", "station"]


def run(reference, current, **rule):
    return compute_drift(reference, current, FEATURES, CATEGORICAL, rule=DriftSpec(**rule))


def by_column(result):
    return {f.column: f for f in result.features}


@pytest.fixture(scope="module")
def big_reference():
    return frame(5000, seed=1)


@pytest.fixture(scope="module")
def small_reference():
    return frame(672, seed=1)  # 28 days of hourly rows


# -- each method: stable -> no drift, shifted -> drift --------------------------------------------


@pytest.mark.parametrize(
    ("reference_rows", "numeric", "categorical"),
    [
        (5000, "Wasserstein distance (normed)", "Jensen-Shannon distance"),
        (672, "K-S p_value", "chi-square p_value"),
    ],
)
def test_default_methods_follow_type_and_size(reference_rows, numeric, categorical):
    reference = frame(reference_rows, seed=1)

    stable = by_column(run(reference, frame(400, seed=2)))
    shifted = by_column(run(reference, frame(400, seed=2, shift=3.0, weather_shift=0.5)))

    assert stable["x"].method == shifted["x"].method == numeric
    assert stable["weather"].method == categorical
    assert not stable["x"].drifted and not stable["weather"].drifted
    assert shifted["x"].drifted and shifted["weather"].drifted


@pytest.mark.parametrize(
    ("method", "label", "threshold"),
    [
        ("wasserstein", "Wasserstein distance (normed)", 0.1),
        ("ks", "K-S p_value", 0.05),
        ("psi", "PSI", 0.1),
        ("jensenshannon", "Jensen-Shannon distance", 0.1),
        ("hellinger", "Hellinger distance", 0.1),
    ],
)
def test_a_method_set_in_the_spec_is_used_and_recorded(big_reference, method, label, threshold):
    rule = {"methods": {"x": method}, "thresholds": {"x": threshold}}

    stable = by_column(run(big_reference, frame(1000, seed=2), **rule))["x"]
    shifted = by_column(run(big_reference, frame(1000, seed=2, shift=3.0), **rule))["x"]

    assert stable.method == shifted.method == label
    assert stable.threshold == threshold
    assert not stable.drifted and shifted.drifted


def test_chi_square_on_a_low_cardinality_categorical(big_reference):
    rule = {"methods": {"weather": "chisquare"}, "thresholds": {"weather": 0.05}}

    stable = by_column(run(big_reference, frame(400, seed=2), **rule))["weather"]
    shifted = by_column(run(big_reference, frame(400, seed=2, weather_shift=0.3), **rule))

    assert stable.method == "chi-square p_value" and not stable.drifted
    assert shifted["weather"].drifted


# -- high-cardinality categoricals --


def test_high_cardinality_stable_on_small_samples_does_not_drift(big_reference):
    days = [frame(230, seed=s) for s in range(10, 20)]  # ten single days of ~230 rows

    folded = [by_column(run(big_reference, day))["station"] for day in days]
    # The same days on all 260 levels: most levels unseen in 230 rows, so it "drifts" every day.
    raw = [
        by_column(run(big_reference, day, max_levels=1000, methods={"station": "jensenshannon"}))[
            "station"
        ]
        for day in days
    ]

    assert folded[0].method == "Jensen-Shannon distance on the top 4 levels + other"  # 230 // 50
    assert not any(f.drifted for f in folded)
    assert all(f.drifted for f in raw)
    assert max(f.score for f in folded) < min(f.score for f in raw)


def test_high_cardinality_shift_into_the_top_levels_drifts(big_reference):
    shifted = frame(230, seed=3)
    shifted["station"] = pd.Categorical(
        np.where(np.arange(230) % 2 == 0, LEVELS[0], shifted["station"].astype(str))
    )

    station = by_column(run(big_reference, shifted))["station"]

    assert station.drifted and station.score >= station.threshold


# -- calendar features --


def test_an_exempt_calendar_feature_is_not_compared(big_reference):
    # Only night hours in the window: against a whole-day reference the hour always "drifts".
    current = frame(1000, seed=2).assign(hour=np.random.default_rng(5).integers(0, 6, 1000))

    compared = by_column(run(big_reference, current))
    exempt = run(big_reference, current, exempt=("hour",))

    assert compared["hour"].drifted
    hour = by_column(exempt)["hour"]
    assert hour.method == EXEMPT and not hour.compared and not hour.drifted
    assert exempt.drifted_features == 0


# -- the sample-size guard --


def test_a_window_below_min_rows_is_not_enough_data(big_reference, tmp_path):
    # 60 rows of a heavily shifted window: would drift, but is too small to judge.
    current = frame(60, seed=2, shift=5.0, weather_shift=0.8)
    html, js = tmp_path / "d.html", tmp_path / "d.json"

    result = compute_drift(
        big_reference,
        current,
        FEATURES,
        CATEGORICAL,
        rule=DriftSpec(min_rows=200, exempt=("hour",)),
        html_path=html,
        json_path=js,
    )

    assert result.status == NOT_ENOUGH_DATA
    assert "60 rows in the window" in result.shortfall and "200" in result.shortfall
    assert result.drifted_features == 0 and not result.prediction.drifted
    assert {f.method for f in result.features} == {NOT_ENOUGH_DATA, EXEMPT}
    assert "not enough data" in html.read_text(encoding="utf-8")
    assert '"status": "not enough data"' in js.read_text(encoding="utf-8")
    verdict = judge_drift(DriftSpec(), 0.0, [], 4, result.shortfall)
    assert verdict.level == "ok" and verdict.reason.startswith("not judged, not enough data")


def test_an_empty_reference_is_not_enough_data(big_reference):
    result = run(big_reference.iloc[:0], frame(500, seed=2))

    assert result.status == NOT_ENOUGH_DATA and "0 in the reference" in result.shortfall


def test_a_feature_with_too_few_values_is_not_judged(big_reference):
    current = frame(500, seed=2, shift=5.0)
    current.loc[current.index[20:], "x"] = np.nan  # 20 values left

    x = by_column(run(big_reference, current, min_values=50))["x"]

    assert not x.compared and not x.drifted
    assert x.method == f"{NOT_ENOUGH_DATA} (20 values, minimum 50)"


def test_just_enough_rows_is_judged(small_reference):
    rule = DriftSpec(min_rows=200)
    shifted = compute_drift(
        small_reference, frame(200, seed=2, shift=3.0), FEATURES, CATEGORICAL, rule=rule
    )

    assert shifted.status == "compared" and by_column(shifted)["x"].drifted


def test_judge_drift_without_shortfall_is_unchanged():
    rule = replace(DriftSpec(), warn_share=0.05, error_share=0.10)
    assert judge_drift(rule, 0.5, ["x"], 4).level == "error"
