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


def _drawn_rows(rng: np.random.Generator, resamples: int, m: int) -> np.ndarray:
    """The rows (0..m-1) each resample draws: m of them, with replacement (resamples x m)."""
    if m == 0:
        return np.zeros((resamples, 0), dtype=np.int64)
    return rng.integers(0, m, size=(resamples, m))


def _bin_counts(bins: np.ndarray, nbins: int) -> np.ndarray:
    """How many of each resample's values (a row of `bins`) fall in each of 0..nbins-1."""
    resamples = len(bins)
    offset = bins + np.arange(resamples)[:, None] * nbins
    return np.bincount(offset.ravel(), minlength=resamples * nbins).reshape(resamples, nbins)


def _draws(rng: np.random.Generator, resamples: int, m: int) -> np.ndarray:
    """How many times each of m rows is drawn (resamples x m, integers), each resample of the
    m rows drawn with replacement to its own size."""
    return _bin_counts(_drawn_rows(rng, resamples, m), m)


def _class_draws(
    rng: np.random.Generator, resamples: int, y: np.ndarray, stratified: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Each resample's draw counts of the positive rows and of the negative rows, each in the
    rows' order: within each class (stratified, positives drawn first) or over all rows."""
    positive = y > 0
    if stratified:
        return _draws(rng, resamples, int(positive.sum())), _draws(
            rng, resamples, int((~positive).sum())
        )
    counts = _draws(rng, resamples, len(y))
    return counts[:, positive], counts[:, ~positive]


def _resample_weights(
    rng: np.random.Generator, resamples: int, y: np.ndarray, stratified: bool
) -> np.ndarray:
    """Count weights (resamples x rows): `_class_draws` put back in the rows' order."""
    positive = y > 0
    c_pos, c_neg = _class_draws(rng, resamples, y, stratified)
    w = np.zeros((resamples, len(y)))
    w[:, positive], w[:, ~positive] = c_pos, c_neg
    return w


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
        # a group no draw reached adds nothing (0 * nan would void the whole resample)
        return np.where(pos > 0, pos * tp / (tp + fp), 0.0).sum(axis=1) / total_pos


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


@dataclass(frozen=True)
class _Segments:
    """Where one prediction vector puts each row for `_ranking_from_draws`: computed once per
    vector, used by every chunk of resamples."""

    cuts: np.ndarray
    """ranks among the negatives (scores ascending) at which a positive's score falls"""
    below: np.ndarray
    """per positive row: how many negatives score lower ..."""
    up_to: np.ndarray
    """... lower or tied"""
    segment: np.ndarray
    """per drawn row: its segment (how many cuts lie at or below its rank), or the last one
    (`nbins - 1`, counted for no negative) for a positive row drawn among all rows"""
    nbins: int
    order_pos: np.ndarray
    lower_pos: np.ndarray
    """per positive row: how many positives score lower"""


def _segments(p: np.ndarray, positive: np.ndarray, over_all_rows: bool) -> _Segments:
    s_pos, s_neg = p[positive], p[~positive]
    sorted_neg = np.sort(s_neg)
    below = np.searchsorted(sorted_neg, s_pos, "left")
    up_to = np.searchsorted(sorted_neg, s_pos, "right")
    cuts = np.unique(np.r_[below, up_to])
    # Cuts fall between groups of tied scores, so the first rank of a negative's group gives
    # the same segment as its own.
    segment = np.searchsorted(cuts, np.searchsorted(sorted_neg, s_neg, "left"), "right")
    nbins = len(cuts) + 1
    if over_all_rows:
        by_row = np.full(len(p), nbins)
        by_row[~positive] = segment
        segment, nbins = by_row, nbins + 1
    order_pos = np.argsort(s_pos, kind="stable")
    lower_pos = np.searchsorted(s_pos[order_pos], s_pos, "left")
    return _Segments(cuts, below, up_to, segment, nbins, order_pos, lower_pos)


def _ranking_from_draws(
    metric: str, segments: _Segments, c_pos: np.ndarray, neg_draws: np.ndarray
) -> np.ndarray:
    """`_ranking` from the positives' counts `c_pos` (resamples x positive rows) and the rows
    each resample drew for the negative class, `neg_draws` (indices into `segments.segment`).

    A positive row's share of ROC-AUC is the weight of the negatives scored below it (half of
    those tied), its share of average precision the precision at its score. Both read the
    negatives' weight below a positive's score only, so the negatives are counted in segments
    between the positives' scores (at most 2 per positive), not row by row in score order:
    one gather and one count of the draws, where the gather, cumulative sum and copy of a
    resamples x negatives matrix took 2.5 s per 1000 resamples of 58k rows (ties as sklearn)."""
    cuts = segments.cuts
    # One resample at a time: the gather and count of a row stay in cache (0.15 s per 1000
    # resamples of 58k rows, against 0.33 s for the whole chunk's matrix and its offsets).
    counts = np.empty((len(neg_draws), segments.nbins), dtype=np.int64)
    for i, drawn in enumerate(neg_draws):
        counts[i] = np.bincount(segments.segment[drawn], minlength=segments.nbins)
    # cumulative[:, i]: the weight of the negatives ranked below cuts[i]; [:, -1]: all of them
    cumulative = np.cumsum(counts[:, : len(cuts) + 1], axis=1)
    total_pos, total_neg = c_pos.sum(axis=1), cumulative[:, -1]

    def weight_below(rank: np.ndarray) -> np.ndarray:
        return cumulative[:, np.searchsorted(cuts, rank)]

    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "roc_auc":
            shares = 0.5 * (weight_below(segments.below) + weight_below(segments.up_to))
            return (c_pos * shares).sum(axis=1) / (total_pos * total_neg)
        cum_pos = np.zeros((len(c_pos), c_pos.shape[1] + 1), dtype=np.int64)
        np.cumsum(c_pos[:, segments.order_pos], axis=1, out=cum_pos[:, 1:])
        # at a positive row's score: the true and false positives scored at or above it
        tp = total_pos[:, None] - cum_pos[:, segments.lower_pos]
        fp = total_neg[:, None] - weight_below(segments.below)
        precision = np.divide(tp, tp + fp, out=np.zeros(tp.shape), where=c_pos > 0)
        return (c_pos * precision).sum(axis=1) / total_pos


def _resampled(metric, y, predictions, resamples, seed, top_k_share, stratified):
    """The metric of each prediction vector on every resample: one array (resamples,) each."""
    y = np.asarray(y, dtype=float)
    predictions = [np.asarray(p, dtype=float) for p in predictions]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(len(y), 1))
    out: list[list[np.ndarray]] = [[] for _ in predictions]
    positive = y > 0
    if metric in ("roc_auc", "pr_auc"):
        segments = [_segments(p, positive, not stratified) for p in predictions]
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        if metric in ("roc_auc", "pr_auc"):
            # The same draws as `_class_draws`: the positives' then the negatives' (stratified),
            # or all rows'. A ranking metric reads the negatives' draws in segments.
            if stratified:
                c_pos = _draws(rng, size, int(positive.sum()))
                neg_draws = _drawn_rows(rng, size, int((~positive).sum()))
            else:
                neg_draws = _drawn_rows(rng, size, len(y))
                c_pos = _bin_counts(neg_draws, len(y))[:, positive]
            for i, layout in enumerate(segments):
                out[i].append(_ranking_from_draws(metric, layout, c_pos, neg_draws))
            continue
        w = _resample_weights(rng, size, y, stratified)
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
