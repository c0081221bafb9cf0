"""Which drift test each column gets, by its type and cardinality and the spec's overrides.
Pure, no Evidently: `drift.compute_drift` hands the plan to Evidently as per-column methods.

    numeric                        Evidently's choice by size: K-S (p < 0.05) up to 1,000
                                   reference values, Wasserstein distance (normed, >= 0.1) above;
                                   a numeric column of <= 5 values like a low-cardinality one
    low-cardinality categorical    Evidently's choice by size: chi-square (p < 0.05) up to 1,000
                                   reference values, Jensen-Shannon distance (>= 0.1) above
    high-cardinality categorical   more than `max_levels` reference levels: its `top_k` most
                                   frequent reference levels (at most one per ROWS_PER_LEVEL rows)
                                   plus "other", Jensen-Shannon distance (>= 0.1): on a few hundred
                                   rows most of hundreds of levels are unseen, and every test on
                                   them "drifts"
    exempt                         not compared (calendar and cyclical features)

A spec's `methods:` replaces the choice for a feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ml_assets.models.drift_spec import METHOD_NAMES, METHODS, DriftSpec

if TYPE_CHECKING:
    import pandas as pd

EXEMPT = "exempt"
NOT_ENOUGH_DATA = "not enough data"
OTHER = "__other__"
HIGH_CARDINALITY_METHOD = "jensenshannon"
# At most one kept level per this many rows of the smaller side: the noise of a distance grows
# with the number of levels over the rows, so a small window keeps fewer levels.
ROWS_PER_LEVEL = 50


@dataclass(frozen=True)
class ColumnPlan:
    column: str
    method: str | None  # an Evidently stat test; None: Evidently chooses by size
    threshold: float | None  # None: the method's default
    levels: tuple | None = None  # high-cardinality: the reference levels kept, others -> OTHER
    skip: str | None = None  # why the column is not compared (EXEMPT, NOT_ENOUGH_DATA ...)

    def label(self, evidently_method: str) -> str:
        """The method as reported: Evidently's name, plus the level folding if any."""
        name = METHOD_NAMES.get(evidently_method, evidently_method)
        if self.levels is None:
            return name
        return f"{name} on the top {len(self.levels)} levels + other"


def plan_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    rule: DriftSpec,
) -> dict[str, ColumnPlan]:
    """The test of every column of `kinds` ('numerical' or 'categorical')."""
    plans = {}
    top_k = min(rule.top_k, max(1, min(len(reference), len(current)) // ROWS_PER_LEVEL))
    for column, kind in kinds.items():
        if column in rule.exempt:
            plans[column] = ColumnPlan(column, None, None, skip=EXEMPT)
            continue
        values = min(_values(reference[column]), _values(current[column]))
        if 0 < values < rule.min_values:
            skip = f"{NOT_ENOUGH_DATA} ({values} values, minimum {rule.min_values})"
            plans[column] = ColumnPlan(column, None, None, skip=skip)
            continue
        method = rule.methods.get(column)
        threshold = rule.thresholds.get(column)
        levels = None
        if kind == "categorical":
            counts = reference[column].astype("object").value_counts()
            if len(counts) > rule.max_levels:
                levels = tuple(counts.index[:top_k])
                if method is None:
                    method = HIGH_CARDINALITY_METHOD
                    threshold = METHODS[method]
        plans[column] = ColumnPlan(column, method, threshold, levels)
    return plans


def column_kind(reference: pd.Series, current: pd.Series, declared_categorical: bool) -> str:
    import pandas as pd

    # The reference (training-time data) decides, unless it has no values to go by.
    column = reference if reference.notna().any() else current
    values = column.dropna()
    if declared_categorical or pd.api.types.is_bool_dtype(column):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column):
        return "numerical"
    # Object columns: None among booleans or numbers makes pandas fall back to object dtype.
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal", "empty"):
        return "numerical"
    return "categorical"


def normalise(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Only the compared columns, in dtypes Evidently's tests handle: float64 for numeric (so
    nullable Int64 and pd.NA become NaN), pandas category for categorical (string, object and
    boolean columns alike; as object, Evidently's inf-cleaning trips pandas' downcasting
    FutureWarning on every boolean column)."""
    import pandas as pd

    out = {
        c: as_float(frame[c]) if kind == "numerical" else frame[c].astype("category")
        for c, kind in kinds.items()
    }
    return pd.DataFrame(out).reset_index(drop=True)


def as_float(values: pd.Series) -> pd.Series:
    import pandas as pd

    try:
        return pd.to_numeric(values).astype("float64")
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"drift: column {values.name!r} is numeric in the reference but holds non-numeric "
            f"values; declare it categorical ({e})"
        ) from e


def no_values(column: pd.Series) -> bool:
    """A column of only NaN and +-inf is empty to Evidently."""
    return _values(column) == 0


def _values(column: pd.Series) -> int:
    # Evidently drops NaN and +-inf before testing.
    import numpy as np
    import pandas as pd

    values = column.dropna()
    if pd.api.types.is_float_dtype(values):
        values = values[np.isfinite(values)]
    return len(values)


def fold_levels(column: pd.Series, levels: tuple) -> pd.Series:
    """The column with every value outside `levels` (nulls aside) replaced by OTHER."""
    import pandas as pd

    values = column.astype("object")
    kept = values.isna() | values.isin(levels)
    return pd.Series(values.where(kept, OTHER), index=column.index, name=column.name).astype(
        "category"
    )
