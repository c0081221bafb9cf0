"""Metrics with confidence: bootstrap intervals, the decay check that fires only when the decay
is clear of noise, and the promotion gate on a paired interval of the improvement."""

import math
from pathlib import Path

import numpy as np
import pytest

from ml_assets.models.bootstrap import (
    Interval,
    metric_interval,
    paired_improvement,
    weighted_metric,
)
from ml_assets.models.evaluate import classifier_metrics, decide, regressor_metrics
from ml_assets.models.spec import PerformanceSpec, PromotionSpec, spec_from_yml
from ml_assets.monitoring.judge import judge_performance

REPO = Path(__file__).parents[2]


def _world(seed: int, n: int, noise_old: float, noise_new: float):
    """Labels from a latent signal, and two models reading it through their own noise."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.uniform(size=n) < _sigmoid(2 * signal - 3)).astype(float)
    old = _sigmoid(signal + rng.normal(0, noise_old, n) - 2)
    return y, old, _sigmoid(signal + rng.normal(0, noise_new, n) - 2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# -- the bootstrap ------------------------------------------------------------------------------


def test_a_weighted_metric_with_unit_weights_is_the_plain_metric():
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=3000) < 0.1).astype(float)
    # rounded scores: many ties, which both must count the same way
    p = np.round(np.clip(0.1 + 0.3 * y + rng.normal(0, 0.2, y.size), 0, 1), 2)
    ones = np.ones((1, y.size))
    for metric, value in classifier_metrics(y, p, 0.05).items():
        assert weighted_metric(metric, y, p, ones, 0.05)[0] == pytest.approx(value, abs=1e-6)
    target = rng.normal(size=500)
    guess = target + rng.normal(size=500)
    for metric, value in regressor_metrics(target, guess).items():
        assert weighted_metric(metric, target, guess, np.ones((1, 500)))[0] == pytest.approx(value)


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
@pytest.mark.parametrize("stratified", [True, False])
def test_ranking_resamples_from_class_counts_equal_the_weight_matrix(metric, stratified):
    """The ranking metrics are resampled from each class's counts; on the same draws they give
    what the resamples x rows weight matrix gives, tied scores and empty classes included."""
    from ml_assets.models import bootstrap

    for seed in range(25):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(5, 300))
        y = (rng.random(n) < rng.uniform(0.02, 0.6)).astype(float)
        y[:] = 0 if seed == 3 else y  # no positive at all: undefined, as the matrix says
        predictions = [np.round(rng.random(n), int(rng.integers(1, 3))), rng.random(n)]
        fast = bootstrap._resampled(metric, y, predictions, 40, seed, 0.01, stratified)
        w = bootstrap._resample_weights(np.random.default_rng(seed), 40, y, stratified)
        for got, p in zip(fast, predictions):
            want = weighted_metric(metric, y, p, w)
            assert np.array_equal(np.isnan(got), np.isnan(want))
            assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=0, atol=1e-12)


def test_a_resample_that_does_not_draw_the_top_row_still_counts_for_average_precision():
    """A row drawn zero times adds nothing, as a row of weight zero in sklearn: with one row
    per score, about a third of the resamples miss the top-scored row, and each must still
    give its average precision (it was NaN, and dropped from the interval)."""
    from sklearn.metrics import average_precision_score

    from ml_assets.models import bootstrap

    y, _, p = _world(5, 400, 1.0, 1.0)
    (draws,) = bootstrap._resampled("pr_auc", y, [p], 200, 0, 0.01, True)
    assert not np.isnan(draws).any()
    w = np.ones(len(y))
    w[np.argmax(p)] = 0
    assert weighted_metric("pr_auc", y, p, w[None, :])[0] == pytest.approx(
        average_precision_score(y, p, sample_weight=w), abs=1e-12
    )


def test_an_interval_holds_its_value_is_seeded_and_narrows_with_rows():
    y, _, p = _world(0, 6000, 1.0, 1.0)
    wide = metric_interval("roc_auc", y[:600], p[:600], stratified=True)
    narrow = metric_interval("roc_auc", y, p, stratified=True)
    assert wide.lower < wide.value < wide.upper and narrow.lower < narrow.value < narrow.upper
    assert narrow == metric_interval("roc_auc", y, p, stratified=True)  # same seed, same bounds
    ratio = (wide.upper - wide.lower) / (narrow.upper - narrow.lower)
    assert 2.0 < ratio < 4.5  # ~sqrt(10)
    assert narrow.n == 6000 and "stratified" in narrow.method


def test_a_stratified_resample_keeps_a_rare_class():
    y = np.zeros(1000)
    y[[3, 500, 900]] = 1.0
    p = np.linspace(0, 1, 1000)
    interval = metric_interval("roc_auc", y, p, stratified=True)
    assert not math.isnan(interval.lower) and not math.isnan(interval.upper)


def test_a_paired_interval_is_narrower_than_the_two_intervals_apart():
    y, old, _ = _world(4, 3000, 1.0, 1.0)
    new = np.clip(old + np.random.default_rng(5).normal(0, 0.01, y.size), 0, 1)
    paired = paired_improvement("roc_auc", y, new, old, stratified=True)
    alone = metric_interval("roc_auc", y, new, stratified=True)
    # the rows drawn move both models alike: their difference is much surer than either metric
    assert (paired.upper - paired.lower) < (alone.upper - alone.lower) / 3


def test_an_improvement_is_positive_when_better_whichever_way_the_metric_points():
    rng = np.random.default_rng(2)
    y = rng.normal(size=2000)
    good, bad = y + rng.normal(0, 0.5, y.size), y + rng.normal(0, 1.0, y.size)
    assert paired_improvement("rmse", y, good, bad).lower > 0
    assert paired_improvement("rmse", y, bad, good).upper < 0


# -- the promotion gate -------------------------------------------------------------------------


def _gate(rule: PromotionSpec, y, new, old):
    metric = lambda p: classifier_metrics(y, p, 0.01)  # noqa: E731
    baseline = {rule.metric: 0.5}
    improvement = paired_improvement(rule.metric, y, new, old, stratified=True)
    return decide(rule, metric(new), metric(old), baseline, improvement=improvement)


def test_a_gain_a_fixed_margin_would_promote_is_refused_inside_the_noise():
    rule = PromotionSpec(metric="roc_auc", min_improvement=0.005)
    y, old, new = _world(32, 6000, 1.0, 0.95)  # the challenger is a little less noisy
    decision = _gate(rule, y, new, old)
    gain = decision.challenger - decision.champion
    assert 0.0051 <= gain < 0.0052  # the old rule (gain >= margin) promoted this
    assert not decision.promote and not decision.broken
    assert decision.improvement.value == pytest.approx(gain)
    assert decision.improvement.lower < 0 < decision.improvement.upper
    assert "does not clear the required 0.0050" in decision.reason


def test_a_retrain_on_the_same_data_is_refused():
    rule = PromotionSpec(metric="roc_auc", min_improvement=0.0)
    y, old, _ = _world(7, 6000, 1.0, 1.0)
    same = _gate(rule, y, old.copy(), old)  # a deterministic retrain: the very same scores
    assert not same.promote and same.improvement.lower == same.improvement.upper == 0
    # another seed of the same model: scores a hair apart
    jitter = np.clip(old + np.random.default_rng(8).normal(0, 0.002, y.size), 0, 1)
    assert not _gate(rule, y, jitter, old).promote


def test_a_genuinely_better_model_is_promoted():
    rule = PromotionSpec(metric="roc_auc", min_improvement=0.005)
    y, old, new = _world(9, 6000, 1.0, 0.5)  # a feature carrying signal halves the noise
    decision = _gate(rule, y, new, old)
    assert decision.promote and decision.improvement.lower > 0.005
    assert "clears the required 0.0050" in decision.reason and "6,000 rows" in decision.reason


def test_the_first_version_needs_only_to_beat_the_baseline():
    rule = PromotionSpec(metric="pr_auc", min_improvement=0.01)
    base = {"pr_auc": 0.1}
    over = Interval(0.4, 0.35, 0.45, 0.9, 1000, "paired bootstrap")
    first = decide(rule, {"pr_auc": 0.5}, None, base, over_baseline=over)
    assert first.promote and first.over_baseline == over and "[+0.3500, +0.4500]" in first.reason
    broken = decide(rule, {"pr_auc": 0.05}, {"pr_auc": 0.5}, base)
    assert not broken.promote and broken.broken
    with pytest.raises(ValueError, match="paired improvement"):
        decide(rule, {"pr_auc": 0.6}, {"pr_auc": 0.5}, base)


def test_a_lower_is_better_metric_is_gated_the_same_way():
    rule = PromotionSpec(metric="rmse", min_improvement=1.0)
    clear = Interval(2.0, 1.2, 2.8, 0.9, 500, "paired bootstrap")
    noisy = Interval(2.0, 0.4, 3.6, 0.9, 500, "paired bootstrap")
    base = {"rmse": 100.0}
    assert decide(rule, {"rmse": 50.0}, {"rmse": 52.0}, base, improvement=clear).promote
    assert not decide(rule, {"rmse": 50.0}, {"rmse": 52.0}, base, improvement=noisy).promote
    assert not decide(rule, {"rmse": 150.0}, None, base).promote


# -- the decay check ----------------------------------------------------------------------------

RULE = PerformanceSpec(metric="roc_auc", warn_decay=0.04, error_decay=0.08, min_labels=200)


def test_a_decay_inside_the_noise_does_not_retrain():
    # the stable month: 7-day ROC-AUC 0.677 against 0.745 on the test window (-9.1%)
    noisy = Interval(0.677, 0.625, 0.728, 0.9, 330, "bootstrap")
    verdict = judge_performance(RULE, 0.745, noisy, positives=160)
    assert verdict.level == "ok" and "-9.1% decay" in verdict.reason.replace("+9.1%", "-9.1%")
    clear = Interval(0.60, 0.57, 0.63, 0.9, 5000, "bootstrap")
    assert judge_performance(RULE, 0.745, clear, positives=2500).level == "error"
    warn = Interval(0.68, 0.66, 0.705, 0.9, 5000, "bootstrap")
    assert judge_performance(RULE, 0.745, warn, positives=2500).level == "warn"


def test_decay_is_judged_on_the_bootstrap_of_the_window():
    y, _, p = _world(11, 330, 1.0, 2.5)  # a weak model on a small window
    window = metric_interval("roc_auc", y, p, stratified=True)
    reference = window.value / (1 - 0.12)  # the point value is 12% worse: above error_decay
    assert judge_performance(RULE, reference, window, positives=int(y.sum())).level != "error"
    y, _, p = _world(11, 20_000, 1.0, 2.5)  # the same decay on 60 times the labels: clear
    big = metric_interval("roc_auc", y, p, stratified=True)
    assert judge_performance(RULE, big.value / (1 - 0.12), big, int(y.sum())).level == "error"


def test_too_few_labels_or_positives_is_not_enough_labels():
    few = Interval(0.5, 0.3, 0.7, 0.9, 150, "bootstrap")
    verdict = judge_performance(RULE, 0.95, few, positives=40)
    assert verdict.level == "ok" and verdict.reason.startswith("not enough labels: 150")
    rare = Interval(0.5, 0.3, 0.7, 0.9, 5000, "bootstrap")
    assert judge_performance(RULE, 0.95, rare, positives=4).reason.startswith("not enough")
    regression = PerformanceSpec(metric="rmse", warn_decay=0.1, error_decay=0.2)
    worse = Interval(150.0, 140.0, 160.0, 0.9, 5000, "bootstrap")
    assert judge_performance(regression, 100.0, worse, positives=None).level == "error"
    seen = judge_performance(RULE, 0.95, rare, positives=4000, seen_in_training=True)
    assert seen.level == "ok" and "trained on this day" in seen.reason


# -- the spec keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("    window_days: 7\n", "    window_days: 7\n    min_rows: 200\n", "performance.min_rows"),
        ("    window_days: 7\n", "    window_days: 7\n    confidence: 1.5\n", "confidence"),
        ("    window_days: 7\n", "    window_days: 7\n    min_labels: 0\n", "min_labels"),
        ("  min_improvement: 0.005\n", "  min_improvement: -1\n", "promotion.min_improvement"),
        ("  min_improvement: 0.005\n", "  min_improvement: 0.005\n  resamples: 10\n", "resamples"),
    ],
)
def test_a_bad_confidence_key_names_the_file_and_the_field(tmp_path, old, new, field):
    good = (REPO / "model_specs/fraud_classifier.yml").read_text()
    assert old in good
    bad = tmp_path / "fraud_classifier.yml"
    bad.write_text(good.replace(old, new))
    with pytest.raises(ValueError, match=field) as raised:
        spec_from_yml(bad)
    assert str(bad) in str(raised.value)


def test_the_example_and_demo_specs_read_their_confidence_keys():
    spec = spec_from_yml(REPO / "examples/bike_sharing/model_specs/bike_demand.yml")
    assert spec.monitoring.performance.min_labels == 200
    assert spec.promotion.confidence == 0.90 and spec.promotion.resamples == 1000


def test_the_window_row_carries_its_interval_also_in_a_table_written_before(tmp_path):
    import duckdb

    from ml_assets.models.spec import load_specs
    from ml_assets.monitoring import measure
    from ml_assets.monitoring.judge import Verdict

    spec = {s.name: s for s in load_specs()}["fraud_classifier"]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema monitoring")
    con.execute(  # the table as the first release wrote it
        "create table monitoring.performance (model varchar, day date, model_version varchar, "
        "metric varchar, value double, test_window_value double, computed_at timestamp)"
    )
    measured = measure.PerformanceMeasurement(
        metrics={"roc_auc": 0.81},
        labels=240,
        window=Interval(0.8, 0.75, 0.85, 0.9, 1700, "bootstrap"),
        window_positives=30,
        enough_labels=True,
        positives=4,
        reference=0.82,
        seen_in_training=False,
        verdict=Verdict("ok", "fine"),
    )
    for _ in range(2):  # a day written again replaces its rows
        measure.write_performance(con, spec, "2025-03-01", "3", measured, {"roc_auc": 0.82})
    rows = con.sql(
        "select metric, value, lower, upper, n_labels from monitoring.performance order by metric"
    ).fetchall()
    assert rows == [
        ("roc_auc", 0.81, None, None, 240),
        ("roc_auc_trailing_7d", 0.8, 0.75, 0.85, 1700),
    ]
