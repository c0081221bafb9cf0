"""The verdicts behind the drift and performance checks, and the realised metrics they read."""

import math

import numpy as np
import pytest

from ml_assets.models.spec import DriftSpec
from ml_assets.monitoring.judge import (
    calibration,
    importance_share,
    judge_drift,
    relative_decay,
)

FEATURES = ["amount", "hour", "weekday_count", "category"]
IMPORTANCE = {"amount": 0.5, "hour": 0.3, "weekday_count": 0.05, "category": 0.15}


def test_a_calibrated_score_has_no_calibration_error_and_a_shifted_one_has():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(float)
    assert calibration(y, p)["ece"] < 0.01
    shifted = calibration(y, np.clip(p + 0.2, 0, 1))
    assert shifted["ece"] == pytest.approx(0.2, abs=0.03)
    assert shifted["mean_score"] > shifted["positive_rate"]


def test_calibration_of_nothing_is_undefined():
    assert math.isnan(calibration(np.array([]), np.array([]))["ece"])


def test_decay_is_relative_and_signed_by_the_metrics_direction():
    assert relative_decay("roc_auc", 0.90, 0.81) == pytest.approx(0.10)
    assert relative_decay("roc_auc", 0.90, 0.95) < 0  # better
    assert relative_decay("rmse", 100.0, 130.0) == pytest.approx(0.30)
    assert relative_decay("rmse", 100.0, 90.0) < 0
    assert math.isnan(relative_decay("roc_auc", math.nan, 0.8))


def test_a_drifted_feature_weighs_what_the_model_leans_on_it():
    assert importance_share(["weekday_count"], IMPORTANCE, FEATURES) == pytest.approx(0.05)
    assert importance_share(["amount", "category"], IMPORTANCE, FEATURES) == pytest.approx(0.65)
    assert importance_share([], IMPORTANCE, FEATURES) == 0.0
    # no recorded importance: every feature weighs the same
    assert importance_share(["amount"], {}, FEATURES) == pytest.approx(0.25)


def test_drift_verdicts_follow_the_spec_thresholds():
    rule = DriftSpec(warn_share=0.05, error_share=0.10)
    ok = judge_drift(rule, 0.04, ["weekday_count"], 4)
    warn = judge_drift(rule, 0.05, ["weekday_count"], 4)
    error = judge_drift(rule, 0.65, ["amount", "category"], 4)
    assert (ok.level, warn.level, error.level) == ("ok", "warn", "error")
    assert ok.passed and not warn.passed and not error.passed
    assert "amount, category" in error.reason and "65%" in error.reason
