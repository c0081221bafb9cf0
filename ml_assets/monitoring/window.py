"""The rows a drift check compares for a day, read from DuckDB: the spec's current window (N
days up to the day, grown back until it holds enough rows) and, for `reference: {same_period:
...}`, the same dates a cycle earlier. No Dagster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from headwater_core.names import scores_table
from ml_assets.models.spec import ModelSpec, ident, table_ref

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def read_scored_rows(
    con: duckdb.DuckDBPyConnection,
    spec: ModelSpec,
    first: str,
    last: str,
    served: str | None = None,
) -> pa.Table:
    """The rows the model scored on the days first..last: features, `score`, `model_version`.

    `served`: a served predictions' table, whose rows carry the features the model saw, instead
    of the batch scores joined to the feature set."""
    if served is not None:
        columns = ", ".join(f"s.{ident(c)}" for c in spec.features)
        source = f"{served} s"
    else:
        keys = ", ".join(ident(k) for k in spec.keys)
        columns = ", ".join(f"f.{ident(c)}" for c in spec.features)
        source = f"{scores_table(spec.name)} s join {table_ref(spec.feature_set)} f using ({keys})"
    return con.sql(
        f"select {columns}, s.score, s.model_version from {source} "
        "where cast(s.event_time as date) between $1 and $2",
        params=[first, last],
    ).to_arrow_table()


@dataclass(frozen=True)
class ScoredWindow:
    rows: pa.Table  # the window's scored rows: features, `score` and `model_version`
    first_day: str
    last_day: str  # the measured day
    day_rows: int  # rows scored on the measured day itself

    @property
    def label(self) -> str:
        if self.first_day == self.last_day:
            return self.last_day
        return f"{self.first_day}..{self.last_day}"


def read_scored_window(
    con: duckdb.DuckDBPyConnection, spec: ModelSpec, day: str, served: str | None = None
) -> ScoredWindow:
    """The scored rows drift compares for `day`: the `window.partitions` days up to it, grown
    back a day at a time (to `window.max_partitions` days at most) until they hold
    `window.min_rows` rows (of the `served` predictions' table if given)."""
    rule = spec.monitoring.drift
    last = date.fromisoformat(day)
    oldest = last - timedelta(days=rule.max_partitions - 1)
    counts = dict(
        con.sql(
            f"select cast(event_time as date), count(*) from {served or scores_table(spec.name)} "
            "where cast(event_time as date) between $1 and $2 group by 1",
            params=[oldest.isoformat(), day],
        ).fetchall()
    )
    rows = 0
    for days in range(1, rule.max_partitions + 1):
        rows += counts.get(last - timedelta(days=days - 1), 0)
        if days >= rule.window_partitions and rows >= rule.min_rows:
            break
    first = (last - timedelta(days=days - 1)).isoformat()
    rows_ = read_scored_rows(con, spec, first, day, served)
    return ScoredWindow(rows_, first, day, counts.get(last, 0))


def read_same_period(
    con: duckdb.DuckDBPyConnection, spec: ModelSpec, window: ScoredWindow
) -> pa.Table:
    """The drift reference `reference: {same_period: ...}`: the feature rows of the window's
    days one cycle earlier, with their scores where they were scored (NaN where not)."""
    shift = timedelta(days=spec.monitoring.drift.same_period_days)
    first = date.fromisoformat(window.first_day) - shift
    last = date.fromisoformat(window.last_day) - shift
    keys = ", ".join(ident(k) for k in spec.keys)
    columns = ", ".join(f"f.{ident(c)}" for c in spec.features)
    return con.sql(
        f"select {columns}, s.score from {table_ref(spec.feature_set)} f "
        f"left join {scores_table(spec.name)} s using ({keys}) "
        f"where cast(f.{ident(spec.score_date)} as date) between $1 and $2",
        params=[first.isoformat(), last.isoformat()],
    ).to_arrow_table()
