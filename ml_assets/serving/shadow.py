"""The shadow challenger against the champion on served traffic: the same requests, both scores.

`read_pairs` pairs the champion's and the shadow's served rows by request id over the spec's
`serving.shadow.window_days` up to a day, for the newest challenger version shadowed in that
window, with each request's label where it has matured. `compare` measures them: before labels
mature, how far the two agree (correlation of scores, mean difference); on matured labels, the
paired bootstrap of the promotion metric (`bootstrap.paired_improvement`, as the offline gate
does on the test window). `write_comparison` replaces the day's row of
`serving.shadow_comparison`.                                                         (pure)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from headwater_core.names import (
    SHADOW_COMPARISON_TABLE,
    predictions_table,
    shadow_predictions_table,
)
from ml_assets.models.bootstrap import paired_improvement
from ml_assets.models.spec import ModelSpec, ident, table_ref
from ml_assets.monitoring.measure import day_after, label_value

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

COMPARISON_COLUMNS = (
    "model varchar, day date, first_day date, challenger_version varchar, "
    "champion_versions varchar, pairs integer, correlation double, rank_correlation double, "
    "mean_difference double, mean_abs_difference double, metric varchar, labelled integer, "
    "positives integer, improvement double, lower double, upper double, enough_labels boolean, "
    "computed_at timestamp"
)


def first_day(spec: ModelSpec, day: str) -> str:
    """The first day of the comparison's window ending on `day`."""
    window = spec.serving.shadow.window_days
    return (date.fromisoformat(day) - timedelta(days=window - 1)).isoformat()


def read_pairs(con: duckdb.DuckDBPyConnection, spec: ModelSpec, day: str) -> pa.Table:
    """The window's requests both models scored: `champion`, `challenger` (scores),
    `champion_version`, `challenger_version`, and `label` (NULL until it has matured, i.e. until
    the feature set's data reaches its `matures_at`). Only the newest challenger version's."""
    first = (
        date.fromisoformat(day) - timedelta(days=spec.serving.shadow.window_days - 1)
    ).isoformat()
    ((data_until,),) = con.sql(
        f"select max({ident(spec.event_time)}) from {table_ref(spec.feature_set)}"
    ).fetchall()
    data_until = day_after(data_until) if data_until is not None else datetime(1970, 1, 1)
    keys = ", ".join(f"c.{ident(k)}" for k in spec.keys)
    label_keys = " and ".join(f"l.{ident(k)} = c.{ident(k)}" for k in spec.keys)
    matures = f"l.{ident(spec.label.matures_at)}"
    return con.sql(
        f"with pairs as (select {keys}, c.score_date, c.score as champion, s.score as challenger, "
        "c.model_version as champion_version, s.model_version as challenger_version "
        f"from {predictions_table(spec.name)} c join {shadow_predictions_table(spec.name)} s "
        "using (request_id) where c.score_date between $1 and $2), "
        "newest as (select challenger_version from pairs order by score_date desc, "
        "try_cast(challenger_version as integer) desc nulls last, challenger_version desc "
        "limit 1) "
        "select c.score_date, c.champion, c.challenger, c.champion_version, "
        f"c.challenger_version, case when {matures} <= $3 then cast({label_value(spec)} as double) "
        "end as label "
        f"from pairs c left join {table_ref(spec.label.table)} l on {label_keys} "
        "where c.challenger_version = (select challenger_version from newest)",
        params=[first, day, data_until],
    ).to_arrow_table()


@dataclass(frozen=True)
class ShadowComparison:
    """Champion vs challenger on the window's served requests."""

    day: str
    first_day: str
    challenger_version: str | None
    champion_versions: str  # the champion versions that answered, comma-separated
    pairs: int
    correlation: float
    rank_correlation: float
    mean_difference: float  # challenger minus champion, over every pair
    mean_abs_difference: float
    metric: str
    labelled: int  # pairs whose label has matured
    positives: int | None  # ... of them positive (a classifier's)
    improvement: float  # challenger over champion on `metric` (positive: better), NaN: unlabelled
    lower: float
    upper: float
    enough_labels: bool  # counts reach serving.shadow's minimums: the gate may use it

    def said(self) -> str:
        """One line a reviewer reads."""
        if not self.pairs:
            return f"no request both models scored in {self.first_day}..{self.day}"
        agreement = (
            f"{self.pairs:,} requests in {self.first_day}..{self.day}: correlation "
            f"{self.correlation:.4f}, mean difference {self.mean_difference:+.4f}"
        )
        if math.isnan(self.improvement):
            return f"{agreement}; no matured label yet"
        return (
            f"{agreement}; on {self.labelled:,} matured labels the challenger's {self.metric} "
            f"improvement is {self.improvement:+.4f} [{self.lower:+.4f}, {self.upper:+.4f}]"
            + ("" if self.enough_labels else " (not enough labels for the gate)")
        )

    def as_tag(self) -> dict:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan"), float("nan")
    rank = lambda x: np.argsort(np.argsort(x, kind="stable"), kind="stable")  # noqa: E731
    return float(np.corrcoef(a, b)[0, 1]), float(np.corrcoef(rank(a), rank(b))[0, 1])


def compare(spec: ModelSpec, day: str, pairs: pa.Table) -> ShadowComparison:
    """Agreement of the two models on every pair, and the paired bootstrap of the promotion
    metric on the pairs whose label has matured (both classes present, for a classifier)."""
    rule, shadow = spec.promotion, spec.serving.shadow
    first = first_day(spec, day)
    champion = pairs.column("champion").to_numpy().astype(float)
    challenger = pairs.column("challenger").to_numpy().astype(float)
    label = np.array(pairs.column("label").to_pylist(), dtype=float)  # None -> NaN
    correlation, rank_correlation = _correlations(champion, challenger)
    difference = challenger - champion
    known = ~np.isnan(label)
    y = label[known]
    binary = spec.objective == "binary"
    positives = int(y.sum()) if binary else None
    judged = len(y) > 1 and (not binary or 0 < positives < len(y))
    nan = float("nan")
    interval = (
        paired_improvement(
            rule.metric,
            y,
            new=challenger[known],
            old=champion[known],
            confidence=rule.confidence,
            resamples=rule.resamples,
            seed=int(spec.lightgbm.get("seed", 0)),
            top_k_share=spec.top_k_share,
            stratified=binary,
        )
        if judged
        else None
    )
    versions = pairs.column("challenger_version").to_pylist()
    return ShadowComparison(
        day=day,
        first_day=first,
        challenger_version=versions[0] if versions else None,
        champion_versions=",".join(sorted(set(pairs.column("champion_version").to_pylist()))),
        pairs=pairs.num_rows,
        correlation=correlation,
        rank_correlation=rank_correlation,
        mean_difference=float(difference.mean()) if len(difference) else nan,
        mean_abs_difference=float(np.abs(difference).mean()) if len(difference) else nan,
        metric=rule.metric,
        labelled=len(y),
        positives=positives,
        improvement=interval.value if interval else nan,
        lower=interval.lower if interval else nan,
        upper=interval.upper if interval else nan,
        enough_labels=bool(
            interval is not None
            and len(y) >= shadow.min_labelled_rows
            and (not binary or positives >= shadow.min_positives)
        ),
    )


def write_comparison(con: duckdb.DuckDBPyConnection, model: str, c: ShadowComparison) -> None:
    """The day's row of `serving.shadow_comparison` (a re-run replaces it)."""
    from ml_assets.monitoring.measure import replace_rows

    row = (model, c.day, c.first_day, c.challenger_version, c.champion_versions, c.pairs)
    row += (c.correlation, c.rank_correlation, c.mean_difference, c.mean_abs_difference)
    row += (c.metric, c.labelled, c.positives, c.improvement, c.lower, c.upper, c.enough_labels)
    row += (datetime.now(UTC).replace(tzinfo=None),)
    replace_rows(con, SHADOW_COMPARISON_TABLE, COMPARISON_COLUMNS, model, c.day, [row])
