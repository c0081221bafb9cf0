"""A spec's time split pinned by date: `split.train`, `split.validation`, `split.test` as
`{start, end}` instead of days counted back from the newest matured event. Refused, naming the
spec file and the field, when out of order, overlapping, not dates, mixed with day counts, or
(when training) outside the matured data."""

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from ml_assets.models.spec import SpecError, spec_from_yml
from ml_assets.models.train import SPLIT_COLUMN, split_windows
from ml_assets.models.training_set import build_training_set

SPECS = Path(__file__).parents[2] / "model_specs"
PINNED = {
    "train": {"start": "2025-01-01", "end": "2025-01-31"},
    "validation": {"start": "2025-02-01", "end": "2025-02-14"},
    "test": {"start": "2025-02-15", "end": "2025-02-28"},
    "refit": True,
}


def _spec_file(tmp_path: Path, split: dict) -> Path:
    raw = yaml.safe_load((SPECS / "fraud_classifier.yml").read_text())
    raw["split"] = split
    path = tmp_path / "fraud_classifier.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _refusal(tmp_path: Path, split: dict) -> str:
    path = _spec_file(tmp_path, split)
    with pytest.raises(SpecError) as refused:
        spec_from_yml(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ")
    return message


def test_pinned_windows_are_read_as_dates_and_split_by_them(tmp_path: Path):
    spec = spec_from_yml(_spec_file(tmp_path, PINNED))
    assert spec.split.pinned
    assert spec.split.validation.start == date(2025, 2, 1)
    # the newest matured day does not move pinned windows; ends are inclusive in the spec
    windows = split_windows(date(2025, 6, 30), spec.split)
    assert windows.train == (date(2025, 1, 1), date(2025, 2, 1))
    assert windows.validation == (date(2025, 2, 1), date(2025, 2, 15))
    assert windows.test == (date(2025, 2, 15), date(2025, 3, 1))


def test_dates_written_unquoted_in_yaml_are_dates_too(tmp_path: Path):
    path = _spec_file(tmp_path, PINNED)
    path.write_text(path.read_text().replace("'2025-02-15'", "2025-02-15"))
    assert "start: 2025-02-15" in path.read_text()
    assert spec_from_yml(path).split.test.start == date(2025, 2, 15)


def test_the_training_window_may_leave_its_start_open(tmp_path: Path):
    split = {**PINNED, "train": {"end": "2025-01-31"}}
    spec = spec_from_yml(_spec_file(tmp_path, split))
    assert split_windows(date(2025, 6, 30), spec.split).train == (None, date(2025, 2, 1))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"validation": {"start": "2025-01-20", "end": "2025-02-14"}},
            "split.validation.start (2025-01-20) must be after split.train.end (2025-01-31)",
        ),
        (
            {"test": {"start": "2025-01-05", "end": "2025-01-10"}},
            "split.test.start (2025-01-05) must be after split.validation.end",
        ),
        (
            {"test": {"start": "2025-03-10", "end": "2025-03-01"}},
            "split.test.start (2025-03-10) is after its end (2025-03-01)",
        ),
        ({"test": {"start": "2025-02-30", "end": "2025-03-01"}}, "split.test.start '2025-02-30'"),
        ({"test": {"end": "2025-03-01"}}, "split.test.start is missing"),
        ({"test": "2025-03-01"}, "split.test must be {start: YYYY-MM-DD, end: YYYY-MM-DD}"),
        ({"test_days": 7}, "split pins train, validation, test by date and also counts test_days"),
    ],
)
def test_pinned_windows_that_cannot_be_used_are_refused_naming_the_field(
    tmp_path: Path, change: dict, expected: str
):
    assert expected in _refusal(tmp_path, {**PINNED, **change})


def test_pinning_only_some_windows_is_refused(tmp_path: Path):
    message = _refusal(tmp_path, {"test": PINNED["test"], "validation": PINNED["validation"]})
    assert "pin all three" in message and "not train" in message


def test_counted_windows_need_their_day_counts(tmp_path: Path):
    assert "split.validation_days must be a whole number" in _refusal(
        tmp_path, {"test_days": 7, "validation_days": 0}
    )


def _matured_rows(first: date, days: int) -> pa.Table:
    dates = [date.fromordinal(first.toordinal() + i) for i in range(days)]
    return pa.table(
        {"_event_date": dates, "x": list(range(days)), "_label": [0.0, 1.0] * (days // 2)}
    )


def test_a_training_set_is_split_by_the_pinned_dates(tmp_path: Path):
    spec = spec_from_yml(_spec_file(tmp_path, PINNED))
    rows = _matured_rows(date(2024, 12, 20), 80)  # 2024-12-20 .. 2025-03-09
    built = build_training_set(spec, datetime(2025, 3, 9), rows, tmp_path / "t.parquet")
    # rows before the train start and after the test end are left out
    assert built.rows == {"train": 31, "validation": 14, "test": 14}
    splits = built.table.column(SPLIT_COLUMN).to_pylist()
    days = built.table.column("_event_date").to_pylist()
    assert days[splits.index("test")] == date(2025, 2, 15)


@pytest.mark.parametrize(
    ("first", "days", "expected"),
    [
        (date(2025, 1, 1), 50, "split.test.end (2025-02-28) is after the last day whose labels"),
        (date(2025, 1, 10), 80, "split.train.start (2025-01-01) is before the first day"),
    ],
)
def test_pinned_windows_outside_the_matured_data_are_refused(
    tmp_path: Path, first: date, days: int, expected: str
):
    path = _spec_file(tmp_path, PINNED)
    spec = spec_from_yml(path)
    with pytest.raises(SpecError) as refused:
        build_training_set(spec, datetime(2025, 3, 31), _matured_rows(first, days), tmp_path / "t")
    assert str(refused.value).startswith(f"{path}: {expected}")


def test_a_pinned_window_without_rows_is_refused(tmp_path: Path):
    path = _spec_file(tmp_path, PINNED)
    spec = spec_from_yml(path)
    rows = _matured_rows(date(2025, 1, 1), 80)
    keep = [not (date(2025, 2, 1) <= d <= date(2025, 2, 14)) for d in rows.column(0).to_pylist()]
    with pytest.raises(
        SpecError, match=r"split.validation \(2025-02-01..2025-02-14\) holds no row"
    ):
        build_training_set(
            spec, datetime(2025, 3, 31), rows.filter(pa.array(keep)), path.parent / "t"
        )
