"""Scoring: one window of a feature set scored by one model version, written to `scores.<name>`.

No Dagster import: the scores asset and the benchmark floor call the same `score_window` on a
DuckDB connection.
"""

from collections.abc import Callable
from dataclasses import dataclass

from headwater_core.attached import second_connection
from headwater_core.compute import training_threads
from headwater_core.metadata import markdown_preview
from headwater_core.names import SCORES, scores_table
from ml_assets.models.spec import ModelSpec, ident, table_ref

# Rows scored at a time: memory stays bounded whatever the window (a 120-day backfill at 10M
# transactions is 10M rows, ~3.5 GB as Arrow plus pandas in one piece).
SCORE_BATCH_ROWS = 500_000

# The name each batch is registered under on the writing connection.
_BATCH_VIEW = "new_scores"


@dataclass(frozen=True)
class Scored:
    """What one window's scoring wrote."""

    rows: int
    """rows scored in the window"""
    total: int
    """rows in the scores table afterwards"""
    mean: float
    """mean score of the window (0.0 when it has no row)"""
    preview: str
    """markdown preview of the first rows written"""
    label_lag_days: int | None
    """how many days after its date a scored day's last label is final (None: no row)"""


def score_window(
    con,
    spec: ModelSpec,
    booster,
    version: str,
    window: tuple[str, str],
    predict_frame: Callable | None = None,
    threads: int = 0,
    small_rows: int = -1,
) -> Scored:
    """Score the feature set's rows with `score_date` in [window[0], window[1]) and replace that
    window in `scores.<name>`, in batches of SCORE_BATCH_ROWS, in one transaction.

    `con` is a writable DuckDB connection to the warehouse; every row carries `version`.
    `predict_frame` scores a batch's feature frame elsewhere (a Dask cluster: `engine`); None
    is `train.predict(booster, frame)` in this process. `threads` and `small_rows` are the
    resource's LightGBM settings (`training_threads`)."""
    table = scores_table(spec.name)
    batches = _read_window(con, spec, window)
    _create_table(con, spec, table, batches.schema)
    con.execute("begin transaction")
    # (each statement's result is fetched: DuckDB lets no other work, registering the next
    # batch included, start on a connection with a result pending)
    con.execute(
        f"delete from {table} where cast(event_time as date) >= $1 "
        f"and cast(event_time as date) < $2",
        [window[0], window[1]],
    ).fetchall()
    rows, score_sum, label_lag_days, preview_md = 0, 0.0, None, ""
    for batch in batches:
        num_threads = training_threads(batch.num_rows, threads, small_rows)
        score, lag = _write_batch(
            con, spec, booster, version, table, batch, predict_frame, num_threads
        )
        label_lag_days = lag if label_lag_days is None else max(label_lag_days, lag or 0)
        if not rows:
            preview = con.execute(f"select * from {_BATCH_VIEW} limit 5")
            columns = [d[0] for d in preview.description]
            preview_md = markdown_preview(columns, preview.fetchall())
        rows += len(score)
        score_sum += float(score.sum())
    con.execute("commit")
    con.unregister(_BATCH_VIEW)
    # fetched to the end: a half-read result would block the caller's next use of `con`
    ((total,),) = con.execute(f"select count(*) from {table}").fetchall()
    return Scored(
        rows=rows,
        total=total,
        mean=score_sum / rows if rows else 0.0,
        preview=preview_md,
        label_lag_days=label_lag_days,
    )


def _read_window(con, spec: ModelSpec, window: tuple[str, str]):
    """A reader of the window's keys, event time and features, SCORE_BATCH_ROWS at a time."""
    keys = ", ".join(ident(k) for k in spec.keys)
    features = ", ".join(ident(c) for c in spec.features)
    day = ident(spec.score_date)
    # The window is read on a second connection of the same database while `con` writes.
    # No `order by`: a sort would hold the whole window in DuckDB's memory (about 1.4 GiB at
    # 10M rows, the peak of the 10M benchmark) where a plain scan streams it batch by batch;
    # the scores are a table keyed by `keys`, so their insert order means nothing.
    return (
        second_connection(con)
        .sql(
            f"select {keys}, {ident(spec.event_time)} as event_time, {features} "
            f"from {table_ref(spec.feature_set)} where {day} >= $1 "
            f"and {day} < $2",
            params=[window[0], window[1]],
        )
        .to_arrow_reader(SCORE_BATCH_ROWS)
    )


def _create_table(con, spec: ModelSpec, table: str, schema) -> None:
    """The scores table, if it does not exist: keys, event_time, score, model_version and
    scored_at, the keys and event time typed as the feature set types them."""
    import pyarrow as pa

    empty = pa.table(
        {
            **{k: pa.array([], schema.field(k).type) for k in spec.keys},
            "event_time": pa.array([], schema.field("event_time").type),
            "score": pa.array([], pa.float64()),
            "model_version": pa.array([], pa.string()),
        }
    )
    con.execute(f"create schema if not exists {SCORES}")
    con.register(_BATCH_VIEW, empty)
    con.execute(
        f"create table if not exists {table} as "
        f"select *, current_timestamp as scored_at from {_BATCH_VIEW} where false"
    )


def _write_batch(
    con, spec: ModelSpec, booster, version: str, table: str, batch, predict_frame, num_threads
):
    """Score one record batch and insert it; returns its scores and its label lag in days."""
    import pyarrow as pa

    from ml_assets.models.train import predict, to_frame

    batch = pa.Table.from_batches([batch])
    frame = to_frame(batch, spec)
    score = predict_frame(frame) if predict_frame else predict(booster, frame, num_threads)
    out = batch.select([*spec.keys, "event_time"]).append_column(
        "score", pa.array(score, pa.float64())
    )
    out = out.append_column("model_version", pa.array([version] * len(out), pa.string()))
    con.register(_BATCH_VIEW, out)
    con.execute(f"insert into {table} select *, current_timestamp from {_BATCH_VIEW}").fetchall()
    # How many days after its date a scored day's last label is final: the monitor sensor asks
    # for a day's realised performance once the data reaches that far.
    ((lag,),) = con.execute(
        "select max(datediff('day', cast(s.event_time as date), "
        f"l.{ident(spec.label.matures_at)})) "
        f"from {table_ref(spec.label.table)} l join {_BATCH_VIEW} s "
        f"using ({', '.join(ident(k) for k in spec.keys)})"
    ).fetchall()
    return score, lag
