"""Metrics, the baseline and the promotion decision: pure functions, no Dagster, no MLflow."""

from dataclasses import dataclass

import numpy as np

from ml_assets.models.bootstrap import Interval, paired_improvement
from ml_assets.models.spec import ModelSpec, PromotionSpec


def classifier_metrics(y: np.ndarray, p: np.ndarray, top_k_share: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, log loss, Brier score, and recall among the top `top_k_share` scores."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    k = max(1, int(round(len(p) * top_k_share)))
    top = np.argsort(-p, kind="stable")[:k]
    positives = y.sum()
    two_classes = 0 < positives < len(y)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "recall_at_top_k": float(y[top].sum() / positives) if positives else float("nan"),
    }


def regressor_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    err = pred - y
    total = ((y - y.mean()) ** 2).sum()
    return {
        "rmse": float(np.sqrt((err**2).mean())),
        "mae": float(np.abs(err).mean()),
        "r2": float(1 - (err**2).sum() / total) if total > 0 else float("nan"),
    }


def metrics_for(spec: ModelSpec, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    if spec.objective == "binary":
        return classifier_metrics(y, pred, spec.top_k_share)
    return regressor_metrics(y, pred)


@dataclass(frozen=True)
class DecileBaseline:
    """The label's mean per decile of one feature on the training window (nulls: overall mean).

    For the fraud model it is a calibrated one-feature rule; for a regression it is the
    'what the customer spent recently' rule everybody would try first.
    """

    edges: tuple[float, ...]
    means: tuple[float, ...]
    overall: float

    @classmethod
    def fit(cls, feature: np.ndarray, label: np.ndarray, weight=None) -> "DecileBaseline":
        """`weight`: the rows' weights (a sampled training set's), else every row weighs 1."""
        x = np.asarray(feature, dtype=float)
        y = np.asarray(label, dtype=float)
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)
        known = ~np.isnan(x)

        def mean(rows) -> float:
            return float(y[rows].mean() if weight is None else np.average(y[rows], weights=w[rows]))

        overall = mean(slice(None)) if len(y) else 0.0
        if not known.any():
            return cls((), (overall,), overall)
        edges = np.unique(np.quantile(x[known], np.linspace(0.1, 0.9, 9)))
        bins = np.searchsorted(edges, x[known], side="right")
        rows = np.flatnonzero(known)
        means = [
            mean(rows[bins == b]) if (bins == b).any() else overall for b in range(len(edges) + 1)
        ]
        return cls(tuple(float(e) for e in edges), tuple(means), overall)

    def predict(self, feature: np.ndarray) -> np.ndarray:
        x = np.asarray(feature, dtype=float)
        out = np.full(len(x), self.overall)
        known = ~np.isnan(x)
        bins = np.searchsorted(np.asarray(self.edges), x[known], side="right")
        out[known] = np.asarray(self.means)[bins]
        return out


def metrics_on_test_window(spec: ModelSpec, table, frame, booster) -> dict[str, float]:
    """A model's metrics on the test window of a training set (`frame`: its feature frame)."""
    from ml_assets.models.train import LABEL_COLUMN, split_of

    label = table.column(LABEL_COLUMN).to_numpy()[split_of(table) == "test"]
    return metrics_for(spec, label, test_predictions(table, frame, booster))


def test_predictions(table, frame, booster) -> np.ndarray:
    """A model's predictions on the test window's rows, in the training set's order."""
    from ml_assets.models.train import predict, split_of

    return predict(booster, frame[split_of(table) == "test"])


def baseline_predictions(spec: ModelSpec, table) -> np.ndarray:
    """The decile baseline fitted on the train window, predicting the test window's rows; its
    feature read from `table` with the dtype `to_frame` gives a non-categorical column."""
    from ml_assets.models.train import LABEL_COLUMN, split_of, weights_of

    split = split_of(table)
    label = table.column(LABEL_COLUMN).to_numpy()
    column = spec.baseline_feature
    feature = table.select([column]).to_pandas()[column].astype("float64").to_numpy()
    train, test = split == "train", split == "test"
    weight = weights_of(table)
    return DecileBaseline.fit(
        feature[train], label[train], None if weight is None else weight[train]
    ).predict(feature[test])


@dataclass(frozen=True)
class Decision:
    """Whether the challenger replaces the champion, and why, in words a reviewer can check."""

    promote: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None
    baseline: float
    broken: bool = False
    """Refused because the challenger is no better than the baseline (or undefined): something
    is wrong with it, not merely not better than the champion."""
    improvement: Interval | None = None
    """Over the champion on the same rows, paired (None without a champion)."""
    over_baseline: Interval | None = None
    """Over the baseline on the same rows, paired."""


def _improvement(rule: PromotionSpec, new: float, old: float) -> float:
    return new - old if rule.higher_is_better else old - new


def _said(interval: Interval | None) -> str:
    if interval is None:
        return ""
    return (
        f" (paired: {interval.said(signed=True)}, {interval.confidence:.0%} interval, "
        f"{interval.method}, {interval.n:,} rows)"
    )


def decide(
    rule: PromotionSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    baseline: dict[str, float],
    improvement: Interval | None = None,
    over_baseline: Interval | None = None,
) -> Decision:
    """The promotion gate. The challenger must beat the baseline (a point comparison: below it,
    the challenger is broken). With no champion that is enough. Against a champion, the lower
    bound of the paired interval of the `improvement` (`paired_improvement` on the same test
    rows) must reach the rule's margin and be above zero: a gain inside the noise is refused."""
    m = rule.metric
    new, base = challenger[m], baseline[m]
    old = champion[m] if champion is not None else None

    def said(promote: bool, reason: str, broken: bool = False) -> Decision:
        return Decision(promote, reason, m, new, old, base, broken, improvement, over_baseline)

    if np.isnan(new):
        return said(False, f"challenger {m} is undefined on the test window", True)
    if _improvement(rule, new, base) <= 0:
        return said(
            False,
            f"challenger {m} {new:.4f} does not beat the baseline's {base:.4f}"
            + _said(over_baseline),
            True,
        )
    if old is None or np.isnan(old):
        return said(
            True,
            f"no champion yet; challenger {m} {new:.4f} beats the baseline's {base:.4f}"
            + _said(over_baseline),
        )
    if improvement is None:
        raise ValueError("a challenger is judged against a champion on a paired improvement")
    required = rule.min_improvement
    versus = f"challenger {m} {new:.4f} vs champion {old:.4f}: improvement"
    if improvement.lower < required or improvement.lower <= 0 or np.isnan(improvement.lower):
        return said(
            False,
            f"{versus} {improvement.said(signed=True)} ({improvement.confidence:.0%} "
            f"{improvement.method}, {improvement.n:,} rows): its lower bound does not clear "
            f"the required {required:.4f}",
        )
    return said(
        True,
        f"{versus} {improvement.said(signed=True)} ({improvement.confidence:.0%} "
        f"{improvement.method}, {improvement.n:,} rows): its lower bound clears the required "
        f"{required:.4f}",
    )


def judge_on_test_window(
    spec: ModelSpec, table, challenger, champion=None
) -> tuple[dict[str, dict[str, float] | None], int, Decision]:
    """The gate on the test window of the training set `table`: the metrics of the
    `challenger` and `champion` boosters (their held-out twins) and of the decile baseline on
    the same test rows, the number of rows, and the decision with its paired intervals."""
    import pyarrow as pa

    from ml_assets.models.train import LABEL_COLUMN, predict, split_of, to_frame

    test = split_of(table) == "test"
    label = table.column(LABEL_COLUMN).to_numpy()[test]
    # Only the test rows as a feature frame: the models predict nothing else. (LightGBM maps a
    # frame's categories onto those the booster was trained with, so a frame of fewer rows,
    # with fewer categories, predicts the same.)
    frame = to_frame(table.filter(pa.array(test)), spec)
    # Every model predicts the same test rows, so the gate compares them row by row (paired).
    # The champion's held-out twin stopped learning before this test window began (its own
    # validation window ended earlier); its refit may have trained on these very rows.
    predictions = {
        "challenger": predict(challenger, frame),
        "champion": predict(champion, frame) if champion is not None else None,
        "baseline": baseline_predictions(spec, table),
    }
    metrics: dict[str, dict[str, float] | None] = {
        who: metrics_for(spec, label, p) if p is not None else None
        for who, p in predictions.items()
    }

    def paired(old) -> Interval:
        rule = spec.promotion
        return paired_improvement(
            rule.metric,
            label,
            predictions["challenger"],
            old,
            confidence=rule.confidence,
            resamples=rule.resamples,
            seed=int(spec.lightgbm.get("seed", 0)),
            top_k_share=spec.top_k_share,
            stratified=spec.objective == "binary",
        )

    decision = decide(
        spec.promotion,
        metrics["challenger"],
        metrics["champion"],
        metrics["baseline"],
        improvement=paired(predictions["champion"]) if champion is not None else None,
        over_baseline=paired(predictions["baseline"]),
    )
    return metrics, len(label), decision
