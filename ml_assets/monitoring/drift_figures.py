"""Which columns an Evidently drift report draws figures for. No Dagster.

Evidently 0.7 draws each column's plotly figures (distribution, drift over the window) inside
`ValueDrift`'s calculation, about 25 ms a column in every scheduled drift run, whether or not
anybody opens the report. `DriftSpec.figures` chooses: `drifted` (the default) or `all`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()


@contextmanager
def drawn_figures(which: str) -> Iterator[None]:
    """Within the block, Evidently's `ValueDrift` draws its figures only for a drifted column
    (`which="drifted"`); for the others it renders the verdict line alone.

    `ValueDriftCalculation.calculate` calls `_render` with the column's result; a copy without
    the figures' data (`scatter`, the two `distribution`s) renders the verdict counter only, by
    Evidently's own code. Evidently is pinned (0.7.23): tests/unit/test_drift.py fails if this
    hook stops taking effect. The lock keeps two threads from swapping the method under each
    other."""
    if which == "all":
        yield
        return
    from evidently.metrics.column_statistics import ValueDriftCalculation

    draw = ValueDriftCalculation._render

    def render(self, result, options, color_options):
        if not result.drift_detected:
            result = result.copy(
                update={
                    "scatter": None,
                    "current": result.current.copy(update={"distribution": None}),
                    "reference": result.reference.copy(update={"distribution": None}),
                }
            )
        return draw(self, result, options, color_options)

    with _LOCK:
        ValueDriftCalculation._render = render
        try:
            yield
        finally:
            ValueDriftCalculation._render = draw
