"""Plots logged with a training run (matplotlib, imported when a plot is drawn)."""

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def feature_importance_figure(model: str, importance: dict[str, float]) -> Iterator:
    """A bar chart of each feature's share of the model's total gain, largest at the top; the
    figure is closed on leaving the block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = sorted(importance.items(), key=lambda kv: kv[1])
    figure, axis = plt.subplots(figsize=(6, 0.3 * len(bars) + 1))
    try:
        axis.barh([f for f, _ in bars], [g for _, g in bars])
        axis.set_xlabel("share of total gain")
        axis.set_title(f"{model}: feature importance")
        figure.tight_layout()
        yield figure
    finally:
        plt.close(figure)
