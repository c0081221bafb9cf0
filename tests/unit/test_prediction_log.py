"""The served predictions' log (ml_assets/serving/prediction_log.py): the contract between
`headwater serve` and the graph. Records are grouped by model and day, each flush writes whole
files renamed into place, and a day reads back every record it was given."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq

from ml_assets.serving.prediction_log import (
    ROLE_CHAMPION,
    ROLE_SHADOW,
    SCHEMA,
    PredictionLogWriter,
    PredictionRecord,
    day_dir,
    log_dir,
    read_day,
)

DAY1, DAY2 = date(2025, 3, 1), date(2025, 3, 2)


def _record(i: int, day: date = DAY1, model: str = "m", role: str = ROLE_CHAMPION):
    return PredictionRecord(
        request_id=f"r{i}",
        served_at=datetime(2025, 3, 1, 12, 0, i % 60, tzinfo=UTC),
        score_date=day,
        model_name=model,
        model_version="3",
        role=role,
        keys_json=json.dumps({"id": i}),
        features_json=json.dumps({"x": i / 10}),
        score=i / 100,
        latency_ms=0.5,
    )


def test_a_flush_groups_records_by_model_and_day(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.append([_record(1), _record(2, DAY2), _record(3, model="other"), _record(4)])
    assert writer.flush() == 4
    assert read_day(tmp_path, "m", DAY1).column("request_id").to_pylist() == ["r1", "r4"]
    assert read_day(tmp_path, "m", DAY2).column("request_id").to_pylist() == ["r2"]
    assert read_day(tmp_path, "other", DAY1).num_rows == 1
    assert day_dir(tmp_path, "m", DAY1) == tmp_path / "m" / "date=2025-03-01"


def test_records_read_back_as_written_with_the_schema(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    written = [_record(7), _record(7, role=ROLE_SHADOW)]
    writer.append(written)
    writer.flush()
    table = read_day(tmp_path, "m", DAY1)
    assert table.schema == SCHEMA
    back = table.to_pylist()
    assert [PredictionRecord(**row) for row in back] == written
    assert back[0]["served_at"].tzinfo is not None  # timezone-aware, UTC


def test_the_buffer_flushes_itself_at_flush_rows_and_files_never_overwrite(tmp_path):
    writer = PredictionLogWriter(tmp_path, flush_rows=3)
    writer.append([_record(1), _record(2)])
    assert read_day(tmp_path, "m", DAY1).num_rows == 0  # still buffered
    writer.append([_record(3)])
    assert read_day(tmp_path, "m", DAY1).num_rows == 3
    writer.append([_record(4)])
    writer.flush()
    other = PredictionLogWriter(tmp_path)  # a second process writing the same day
    other.append([_record(5)])
    other.flush()
    files = sorted(day_dir(tmp_path, "m", DAY1).glob("*.parquet"))
    assert len(files) == 3 and len({f.name for f in files}) == 3
    assert read_day(tmp_path, "m", DAY1).num_rows == 5


def test_a_reader_never_sees_a_file_being_written(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.append([_record(1)])
    writer.flush()
    folder = day_dir(tmp_path, "m", DAY1)
    # what a writer leaves while writing (or after a crash mid-write): a hidden .tmp file
    pq.write_table(read_day(tmp_path, "m", DAY1), folder / ".abc-000001-000.parquet.tmp")
    assert read_day(tmp_path, "m", DAY1).num_rows == 1
    assert not list(folder.glob("*.tmp.parquet"))
    assert [f.suffix for f in folder.iterdir() if not f.name.startswith(".")] == [".parquet"]


def test_an_empty_flush_and_a_day_without_records(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    assert writer.flush() == 0
    assert not any(tmp_path.iterdir())
    empty = read_day(tmp_path, "m", DAY1)
    assert empty.num_rows == 0 and empty.schema == SCHEMA


def test_the_log_folder_follows_its_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("HEADWATER_SERVING_LOG_DIR", str(tmp_path / "log"))
    assert log_dir() == Path(tmp_path / "log")
