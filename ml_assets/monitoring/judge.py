"""Judging a scored day: realised performance on matured labels, calibration, and the verdicts of
the drift and performance-decay checks. Pure functions, no Dagster, no MLflow.

A verdict has three levels. `ok` passes; `warn` fails the check at WARN severity (visible, no
action); `error` fails it at ERROR severity, which is what makes the monitor sensor retrain.
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ml_assets.models.bootstrap import Interval, metric_interval
from ml_assets.models.evaluate import metrics_for
from ml_assets.models.spec import HIGHER_IS_BETTER, DriftSpec, ModelSpec, PerformanceSpec

Level = Literal["ok", "warn", "error"]


@dataclass(frozen=True)
class Verdict:
    level: Level
    reason: str

    @property
    def passed(self) -> bool:
        return self.level == "ok"


def range_verdict(days: dict[str, Verdict]) -> Verdict:
    """One verdict for the days of a run (one day: its own): the worst level, and the reasons of
    the days that did not pass."""
    if len(days) == 1:
        return next(iter(days.values()))
    failed = {day: v for day, v in sorted(days.items()) if not v.passed}
    if not failed:
        return Verdict("ok", f"every day of {min(days)}..{max(days)} passed ({len(days)} days)")
    level: Level = "error" if any(v.level == "error" for v in failed.values()) else "warn"
    listed = "; ".join(f"{day} ({v.level}): {v.reason}" for day, v in list(failed.items())[:5])
    more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
    return Verdict(
        level,
        f"{len(failed)} of {len(days)} days of {min(days)}..{max(days)} failed: {listed}{more}",
    )


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Expected calibration error over equal-width score bins, and the two rates it compares.

    ECE is the row-weighted mean gap between the mean score and the observed positive rate per
    bin: 0 for a perfectly calibrated model, whatever its ranking.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return {"ece": math.nan, "mean_score": math.nan, "positive_rate": math.nan}
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            gap += rows.sum() * abs(p[rows].mean() - y[rows].mean())
    return {
        "ece": float(gap / len(y)),
        "mean_score": float(p.mean()),
        "positive_rate": float(y.mean()),
    }


def realised_metrics(spec: ModelSpec, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The model's own metrics on one day's matured labels, plus calibration for a classifier."""
    metrics = metrics_for(spec, y, pred)
    if spec.objective == "binary":
        metrics.update(calibration(y, pred))
    return metrics


def realised_interval(spec: ModelSpec, y: np.ndarray, pred: np.ndarray) -> Interval:
    """The decay check's metric on matured labels with its bootstrap interval (a classifier's
    resampled within each class, so its positives are all in every resample)."""
    rule = spec.monitoring.performance
    return metric_interval(
        rule.metric,
        y,
        pred,
        confidence=rule.confidence,
        resamples=rule.resamples,
        seed=int(spec.lightgbm.get("seed", 0)),
        top_k_share=spec.top_k_share,
        stratified=spec.objective == "binary",
    )


def relative_decay(metric: str, reference: float, realised: float) -> float:
    """How much worse `realised` is than `reference`, as a share of it (negative: better)."""
    if reference == 0 or math.isnan(reference) or math.isnan(realised):
        return math.nan
    if metric in HIGHER_IS_BETTER:
        return (reference - realised) / abs(reference)
    return (realised - reference) / abs(reference)


def importance_share(drifted: list[str], importance: dict[str, float], features) -> float:
    """The share of the model's importance (gain) that the drifted features carry.

    A drifted feature the model barely uses (a weekday-sensitive count, say) matters little; one
    it leans on matters a lot. Without a recorded importance every feature weighs the same.
    """
    weights = {f: max(float(importance.get(f, 0.0)), 0.0) for f in features}
    total = sum(weights.values())
    if total <= 0:
        return len(drifted) / len(features) if features else 0.0
    return sum(weights[f] for f in drifted if f in weights) / total


def judge_drift(
    rule: DriftSpec, share: float, drifted: list[str], features: int, shortfall: str | None = None
) -> Verdict:
    """`share` is the importance share of the drifted features (see `importance_share`). A
    window too small to compare (`shortfall`, see `DriftResult.shortfall`) is not judged: the
    check passes and says so, rather than alarm on noise."""
    if shortfall:
        return Verdict("ok", f"not judged, {shortfall}")
    names = f" ({', '.join(drifted)})" if drifted else ""
    said = (
        f"{len(drifted)} of {features} features drifted{names}, carrying {share:.0%} of the "
        "model's importance"
    )
    if share >= rule.error_share:
        return Verdict("error", f"{said}: at or above the error share {rule.error_share:.0%}")
    if share >= rule.warn_share:
        return Verdict("warn", f"{said}: at or above the warning share {rule.warn_share:.0%}")
    return Verdict("ok", f"{said}: below the warning share {rule.warn_share:.0%}")


def enough_labels(rule: PerformanceSpec, labels: int, positives: int | None) -> bool:
    """Whether a window holds enough matured labels (and positives, for a classifier) to judge."""
    return labels >= rule.min_labels and (positives is None or positives >= rule.min_positives)


def judge_performance(
    rule: PerformanceSpec,
    reference: float,
    realised: Interval,
    positives: int | None,
    seen_in_training: bool = False,
) -> Verdict:
    """Decay of `rule.metric` against the version's test window, clear of noise: the level is
    set by the realised interval's best bound (the upper one for a metric where higher is
    better), so a window merely unlucky in which rows it drew does not alarm. Too few matured
    labels (or, for a classifier, too few positives) is "not enough labels", not judged; nor is
    a day the version was trained or selected on (its score there is not a realised one)."""
    m, n = rule.metric, realised.n
    if seen_in_training:
        return Verdict(
            "ok", f"not judged: the version was trained on this day ({m} {realised.value:.4f})"
        )
    if not enough_labels(rule, n, positives) or math.isnan(realised.value):
        counted = f"{n} matured labels" + (
            f", {positives} positive" if positives is not None else ""
        )
        return Verdict(
            "ok",
            f"not enough labels: {counted} (the check needs {rule.min_labels}"
            + (f" and {rule.min_positives} positive" if positives is not None else "")
            + f"); {m} {realised.value:.4f}",
        )
    best = realised.upper if m in HIGHER_IS_BETTER else realised.lower
    decay = relative_decay(m, reference, realised.value)
    clear = relative_decay(m, reference, best)
    said = (
        f"{m} {realised.said()} ({realised.confidence:.0%} interval, {n} labels) vs "
        f"{reference:.4f} on the test window: {decay:+.1%} decay, {clear:+.1%} at the interval's "
        "best bound"
    )
    if clear >= rule.error_decay:
        return Verdict("error", f"{said}, at or above the error decay {rule.error_decay:.0%}")
    if clear >= rule.warn_decay:
        return Verdict("warn", f"{said}, at or above the warning decay {rule.warn_decay:.0%}")
    return Verdict("ok", f"{said}, below the warning decay {rule.warn_decay:.0%}")
