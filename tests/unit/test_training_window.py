"""A training set reads only its training window when the split bounds it (issue 17, item 3):
the rows it reads are the window's, and the training set built from them is the one built from
every matured row."""

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from ml_assets.models.spec import load_specs
from ml_assets.models.training_set import build_training_set, matured_rows, training_start
from tests.feature_tables import feature_warehouse

FIRST = datetime(2025, 1, 1, 8)
DAYS, PER_DAY, MATURES_AFTER = 40, 5, timedelta(days=10)


def _fraud_spec(train_days):
    spec = next(s for s in load_specs() if s.name == "fraud_classifier")
    # no sampling rule: the sample's record (rows before and after) names the window it read
    return replace(spec, split=replace(spec.split, train_days=train_days), sampling=None)


def _warehouse(spec) -> duckdb.DuckDBPyConnection:
    return feature_warehouse(spec, FIRST, DAYS, PER_DAY, timedelta(hours=1), MATURES_AFTER)


def test_a_bounded_training_window_reads_only_its_rows_and_builds_the_same_set(tmp_path: Path):
    bounded, unbounded = _fraud_spec(train_days=5), _fraud_spec(train_days=None)
    con = _warehouse(bounded)
    cutoff, rows = matured_rows(con, bounded)
    _, every_row = matured_rows(con, unbounded)

    # matured by the cut-off: DAYS - 10 days; the window: 5 + 7 + 7 of them
    assert every_row.num_rows == (DAYS - MATURES_AFTER.days) * PER_DAY
    assert rows.num_rows == (5 + 7 + 7) * PER_DAY
    assert training_start(con, bounded, cutoff) == min(rows.column("_event_date").to_pylist())
    assert training_start(con, unbounded, cutoff) is None

    narrow = build_training_set(bounded, cutoff, rows, tmp_path / "narrow.parquet")
    wide = build_training_set(bounded, cutoff, every_row, tmp_path / "wide.parquet")
    assert narrow.table.equals(wide.table)
    assert narrow.data_version == wide.data_version
