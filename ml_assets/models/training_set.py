"""A model's training set, built: the feature set's rows whose label has matured by the cut-off,
split by time and written as Parquet.

The cut-off is the newest event in the feature set; each row carries its label as known then. No
Dagster import: the training-set asset and the benchmark floor call the same two functions,
`matured_rows` (on a DuckDB connection) and then `build_training_set`.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from ml_assets.models.sampling import Sample, sample_of, sampled_rows
from ml_assets.models.spec import ModelSpec, SpecError, ident, table_ref
from ml_assets.models.train import (
    EVENT_DATE_COLUMN,
    LABEL_COLUMN,
    SPLIT_COLUMN,
    SPLITS,
    Windows,
    assign_splits,
    last_matured_day_sql,
    split_windows,
    training_set_sql,
    weights_of,
    write_training_set,
)


@dataclass(frozen=True)
class TrainingSet:
    """A training set written to `path`, with what the training-set asset reports about it."""

    table: pa.Table
    path: Path
    cutoff: datetime
    windows: Windows
    data_version: str
    """sha256 of the Parquet file (first 16 hex digits)"""
    rows: dict[str, int]
    """rows per split: train, validation, test"""
    label_mean: float
    """weighted by the sampling rule's weights, if any: the matured window's own label mean"""
    sample: Sample | None = None
    """what the spec's sampling rule did to the train window (None: the spec has none)"""


def matured_rows(con, spec: ModelSpec) -> tuple[datetime, pa.Table]:
    """The cut-off and the feature set's rows whose label has matured by it, read on a DuckDB
    connection: only the training window's on, when the split bounds it (`train_days`, or a
    pinned `train.start`), not the whole feature table. With a `sampling` rule, the train
    window's rows are sampled in SQL and weighted (`sampling.sampled_rows`)."""
    ((cutoff,),) = con.sql(
        f"select max({ident(spec.event_time)}) from {table_ref(spec.feature_set)}"
    ).fetchall()
    if cutoff is None:
        raise ValueError(f"{spec.feature_set} is empty: nothing to train {spec.name} on")
    windows = None if spec.sampling is None else counted_windows(con, spec, cutoff)
    if windows is not None:
        # the train window's rows sampled by the spec's rule (`sampling`), in SQL
        return cutoff, sampled_rows(con, spec, cutoff, *windows.train)
    since = training_start(con, spec, cutoff)
    sql = training_set_sql(spec, since=since is not None)
    sql = sql.replace("$cutoff", "$1").replace("$since", "$2")
    params = [cutoff] if since is None else [cutoff, since]
    return cutoff, con.sql(sql, params=params).to_arrow_table()


def training_start(con, spec: ModelSpec, cutoff: datetime) -> date | None:
    """The first event day the split uses (None: every matured row, `train_days` null). Counted
    back from the newest matured day exactly as `build_training_set` counts its windows."""
    if spec.split.pinned:
        return spec.split.train.start
    if not spec.split.train_days:
        return None
    windows = counted_windows(con, spec, cutoff)
    return None if windows is None else windows.train[0]


def counted_windows(con, spec: ModelSpec, cutoff: datetime) -> Windows | None:
    """The split's windows at the cut-off, as `build_training_set` will count them (None: no
    matured row yet)."""
    if spec.split.pinned:
        return split_windows(date.min, spec.split)  # (pinned windows are not counted back)
    sql = last_matured_day_sql(spec).replace("$cutoff", "$1")
    ((last_day,),) = con.sql(sql, params=[cutoff]).fetchall()
    return None if last_day is None else split_windows(last_day, spec.split)


def build_training_set(
    spec: ModelSpec, cutoff: datetime, rows: pa.Table, path: Path
) -> TrainingSet:
    """Split the matured rows by time (the spec's pinned windows, or windows counted back from the
    newest matured day) and write them to `path`."""
    if rows.num_rows == 0:
        raise ValueError(
            f"{spec.name}: no row of {spec.feature_set} has a matured label by {cutoff}"
        )
    days = rows.column(EVENT_DATE_COLUMN).to_pylist()
    windows = split_windows(max(days), spec.split)
    table = assign_splits(rows, windows)
    if spec.split.pinned:
        check_pinned_windows(spec, windows, min(days), max(days), table)
    version = write_training_set(table, path)
    counts = {s: 0 for s in SPLITS}
    for s in table.column(SPLIT_COLUMN).to_pylist():
        counts[s] += 1
    return TrainingSet(
        table=table,
        path=path,
        cutoff=cutoff,
        windows=windows,
        data_version=version,
        rows=counts,
        label_mean=_label_mean(table),
        sample=sample_of(table),
    )


def _label_mean(table: pa.Table) -> float:
    label, weight = table.column(LABEL_COLUMN).to_numpy(), weights_of(table)
    return float(label.mean() if weight is None else np.average(label, weights=weight))


def check_pinned_windows(
    spec: ModelSpec, windows: Windows, first_day: date, last_day: date, table: pa.Table
) -> None:
    """Windows pinned by date must lie inside the matured data and each hold rows: a test window
    past the last matured day would judge the model on labels not final yet."""
    where = spec.source or spec.name
    start, end = windows.train[0], windows.test[1] - timedelta(days=1)
    if end > last_day:
        raise SpecError(
            f"{where}: split.test.end ({end}) is after the last day whose labels have matured "
            f"({last_day}): move it back, or load more days"
        )
    if start is not None and start < first_day:
        raise SpecError(
            f"{where}: split.train.start ({start}) is before the first day with a matured label "
            f"({first_day})"
        )
    split = table.column(SPLIT_COLUMN).to_pylist()
    for name in SPLITS:
        if name not in split:
            lo, hi = getattr(windows, name)
            raise SpecError(
                f"{where}: split.{name} ({lo or 'start'}..{hi - timedelta(days=1)}) holds no row "
                f"of {spec.feature_set} with a matured label"
            )
