"""Bootstrap confidence intervals of a model metric, and of the paired difference of two models'
metric on the same rows. Pure numpy, seeded, vectorised over the resamples.

A resample is a vector of counts (how many times each row was drawn), so a metric on it is a
weighted metric: every resample is computed at once from one sort of the scores. A classifier's
rows are resampled within each class (stratified): each resample keeps the number of positives,
so a rare class never vanishes from a resample and ROC-AUC stays defined.

The interval is the percentile interval at `confidence` two-sided (0.90: each bound on its own is
a one-sided 95% bound, which is how the decay check and the promotion gate read them).
"""

from dataclasses import dataclass

import numpy as np

from ml_assets.models.spec import HIGHER_IS_BETTER

# Cells (resamples x rows) computed at once: bounds memory at ~100 MB on any test window.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A metric (or a difference of two) with its bootstrap interval over `n` rows."""

    value: float
    lower: float
    upper: float
    confidence: float
    n: int
    method: str

    def said(self, digits: int = 4, signed: bool = False) -> str:
        """`0.8123 [0.7950, 0.8290]` in words a reviewer reads."""
        f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        return f"{f.format(self.value)} [{f.format(self.lower)}, {f.format(self.upper)}]"


def _counts(rng: np.random.Generator, resamples: int, rows: np.ndarray, n: int) -> np.ndarray:
    """Draw counts (resamples x n) of the rows `rows` (indices into n), each resampled with
    replacement to its own size."""
    m = len(rows)
    out = np.zeros((resamples, n))
    if m == 0:
        return out
    drawn = rng.integers(0, m, size=(resamples, m)) + np.arange(resamples)[:, None] * m
    counts = np.bincount(drawn.ravel(), minlength=resamples * m).reshape(resamples, m)
    out[:, rows] = counts
    return out


def _resample_weights(
    rng: np.random.Generator, resamples: int, y: np.ndarray, stratified: bool
) -> np.ndarray:
    n = len(y)
    if not stratified:
        return _counts(rng, resamples, np.arange(n), n)
    positive = y > 0
    return _counts(rng, resamples, np.flatnonzero(positive), n) + _counts(
        rng, resamples, np.flatnonzero(~positive), n
    )


def _ranking(metric: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted ROC-AUC or average precision per resample (row of `w`), ties as sklearn."""
    order = np.argsort(-p, kind="stable")
    ps, ys, ws = p[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])  # groups of tied scores
    pos = np.add.reduceat(ws * ys, starts, axis=1)
    neg = np.add.reduceat(ws * (1 - ys), starts, axis=1)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "roc_auc":
            # scores descend: the negatives ranked below a group are those after it
            below = total_neg[:, None] - np.cumsum(neg, axis=1)
            return (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
        tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
        return (pos * tp / (tp + fp)).sum(axis=1) / total_pos


def _top_k_recall(y: np.ndarray, p: np.ndarray, w: np.ndarray, share: float) -> np.ndarray:
    order = np.argsort(-p, kind="stable")
    ys, ws = y[order], w[:, order]
    k = max(1, int(round(len(y) * share)))
    before = np.cumsum(ws, axis=1) - ws
    taken = np.clip(k - before, 0, ws)  # the resample's first k rows, a row's copies in part
    with np.errstate(invalid="ignore", divide="ignore"):
        return (taken * ys).sum(axis=1) / (ws * ys).sum(axis=1)


def weighted_metric(
    metric: str, y: np.ndarray, p: np.ndarray, w: np.ndarray, top_k_share: float = 0.01
) -> np.ndarray:
    """`metric` of predictions `p` for labels `y` under each row of count weights `w`
    (resamples x rows); with weights of ones it is the plain metric of `evaluate`."""
    if metric in ("roc_auc", "pr_auc"):
        return _ranking(metric, y, p, w)
    if metric == "recall_at_top_k":
        return _top_k_recall(y, p, w, top_k_share)
    total = w.sum(axis=1)
    if metric == "log_loss":
        q = np.clip(p, 1e-7, 1 - 1e-7)
        return w @ -(y * np.log(q) + (1 - y) * np.log(1 - q)) / total
    if metric == "brier":
        return w @ (p - y) ** 2 / total
    if metric == "rmse":
        return np.sqrt(w @ (p - y) ** 2 / total)
    if metric == "mae":
        return w @ np.abs(p - y) / total
    if metric == "r2":
        mean = w @ y / total
        spread = (w * (y[None, :] - mean[:, None]) ** 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return 1 - (w @ (p - y) ** 2) / spread
    raise ValueError(f"no bootstrap for metric {metric!r}")


def _resampled(metric, y, predictions, resamples, seed, top_k_share, stratified):
    """The metric of each prediction vector on every resample: one array (resamples,) each."""
    y = np.asarray(y, dtype=float)
    predictions = [np.asarray(p, dtype=float) for p in predictions]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(len(y), 1))
    out: list[list[np.ndarray]] = [[] for _ in predictions]
    for start in range(0, resamples, chunk):
        w = _resample_weights(rng, min(chunk, resamples - start), y, stratified)
        for i, p in enumerate(predictions):
            out[i].append(weighted_metric(metric, y, p, w, top_k_share))
    return [np.concatenate(parts) for parts in out]


def _bounds(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _method(resamples: int, stratified: bool, paired: bool) -> str:
    kind = "paired bootstrap" if paired else "bootstrap"
    return f"{kind}, {resamples} resamples" + (", stratified by class" if stratified else "")


def metric_interval(
    metric: str,
    y: np.ndarray,
    p: np.ndarray,
    confidence: float = 0.90,
    resamples: int = 1000,
    seed: int = 0,
    top_k_share: float = 0.01,
    stratified: bool = False,
) -> Interval:
    """`metric` of `p` on labels `y` with its bootstrap percentile interval."""
    if len(y) == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, confidence, 0, _method(resamples, stratified, False))
    ones = np.ones((1, len(y)))
    value = float(
        weighted_metric(metric, np.asarray(y, float), np.asarray(p, float), ones, top_k_share)[0]
    )
    (draws,) = _resampled(metric, y, [p], resamples, seed, top_k_share, stratified)
    low, high = _bounds(draws, confidence)
    return Interval(value, low, high, confidence, len(y), _method(resamples, stratified, False))


def paired_improvement(
    metric: str,
    y: np.ndarray,
    new: np.ndarray,
    old: np.ndarray,
    confidence: float = 0.90,
    resamples: int = 1000,
    seed: int = 0,
    top_k_share: float = 0.01,
    stratified: bool = False,
) -> Interval:
    """How much better `new` is than `old` on `metric`, on the same rows (positive: better,
    whichever way the metric points), with the paired bootstrap interval: both models are
    scored on each resample, so the noise of which rows were drawn cancels out."""
    sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
    ones = np.ones((1, len(y)))
    y_ = np.asarray(y, float)
    point = [
        weighted_metric(metric, y_, np.asarray(q, float), ones, top_k_share)[0] for q in (new, old)
    ]
    draws_new, draws_old = _resampled(
        metric, y, [new, old], resamples, seed, top_k_share, stratified
    )
    low, high = _bounds(sign * (draws_new - draws_old), confidence)
    return Interval(
        float(sign * (point[0] - point[1])),
        low,
        high,
        confidence,
        len(y),
        _method(resamples, stratified, True),
    )
