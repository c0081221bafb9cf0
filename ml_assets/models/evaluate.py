"""Metrics, the baseline and the promotion decision: pure functions, no Dagster, no MLflow."""

from dataclasses import dataclass

import numpy as np

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
    def fit(cls, feature: np.ndarray, label: np.ndarray) -> "DecileBaseline":
        x = np.asarray(feature, dtype=float)
        y = np.asarray(label, dtype=float)
        known = ~np.isnan(x)
        overall = float(y.mean()) if len(y) else 0.0
        if not known.any():
            return cls((), (overall,), overall)
        edges = np.unique(np.quantile(x[known], np.linspace(0.1, 0.9, 9)))
        bins = np.searchsorted(edges, x[known], side="right")
        means = [
            float(y[known][bins == b].mean()) if (bins == b).any() else overall
            for b in range(len(edges) + 1)
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
    from ml_assets.models.train import LABEL_COLUMN, predict, split_of

    test = split_of(table) == "test"
    label = table.column(LABEL_COLUMN).to_numpy()
    return metrics_for(spec, label[test], predict(booster, frame[test]))


def baseline_metrics(spec: ModelSpec, table, frame) -> dict[str, float]:
    """The decile baseline's metrics on the test window of a training set, fitted on its train
    window."""
    from ml_assets.models.train import LABEL_COLUMN, split_of

    split = split_of(table)
    label = table.column(LABEL_COLUMN).to_numpy()
    feature = frame[spec.baseline_feature].astype("float64").to_numpy()
    train, test = split == "train", split == "test"
    baseline = DecileBaseline.fit(feature[train], label[train])
    return metrics_for(spec, label[test], baseline.predict(feature[test]))


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


def _improvement(rule: PromotionSpec, new: float, old: float) -> float:
    return new - old if rule.higher_is_better else old - new


def decide(
    rule: PromotionSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    baseline: dict[str, float],
) -> Decision:
    """The promotion gate: beat the baseline, and the champion by the rule's margin."""
    m = rule.metric
    new, base = challenger[m], baseline[m]
    old = champion[m] if champion is not None else None
    if np.isnan(new):
        return Decision(
            False, f"challenger {m} is undefined on the test window", m, new, old, base, True
        )
    if _improvement(rule, new, base) <= 0:
        return Decision(
            False,
            f"challenger {m} {new:.4f} does not beat the baseline's {base:.4f}",
            m,
            new,
            old,
            base,
            True,
        )
    if old is None or np.isnan(old):
        return Decision(
            True,
            f"no champion yet; challenger {m} {new:.4f} beats the baseline's {base:.4f}",
            m,
            new,
            old,
            base,
        )
    gain = _improvement(rule, new, old)
    if gain < rule.min_improvement or gain <= 0:
        return Decision(
            False,
            f"challenger {m} {new:.4f} vs champion {old:.4f}: improvement {gain:+.4f} is below "
            f"the required {rule.min_improvement:.4f}",
            m,
            new,
            old,
            base,
        )
    return Decision(
        True,
        f"challenger {m} {new:.4f} beats champion {old:.4f} by {gain:+.4f} "
        f"(required {rule.min_improvement:.4f})",
        m,
        new,
        old,
        base,
    )
