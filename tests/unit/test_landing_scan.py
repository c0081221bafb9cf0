"""What the landing sensor counts as new, on real files in a temporary folder (no Dagster)."""

import json
import time
from pathlib import Path

from data_platform.raw.contract import load_contracts
from data_platform.raw.landing_scan import consecutive_ranges, scan_landing
from headwater_core.config import dbt_project_dir

CONTRACTS = list(load_contracts(dbt_project_dir()).values())


def _land(landing: Path, table: str, *days: str, suffix: str = ".csv") -> None:
    (landing / table).mkdir(parents=True, exist_ok=True)
    for day in days:
        (landing / table / f"{table}_{day}{suffix}").write_text("header\n")


def _scan(landing: Path, cursor: str | None = None, built: bool = True):
    # an hour on: every file written here has settled (test_landing_faults tests the wait)
    return scan_landing(
        cursor, CONTRACTS, landing, built, lambda key: key >= "2025-01-01", time.time() + 3600
    )


def test_consecutive_days_make_one_range():
    days = ["2025-01-04", "2025-01-01", "2025-01-02", "2025-01-06", "2025-01-05"]
    assert consecutive_ranges(days) == [("2025-01-01", "2025-01-02"), ("2025-01-04", "2025-01-06")]


def test_sources_with_the_same_new_days_share_a_range(tmp_path):
    _land(tmp_path, "customers", "2025-01-01", "2025-01-03")
    _land(tmp_path, "transactions", "2025-01-01", "2025-01-02", "2025-01-04")
    _land(tmp_path, "chargebacks", "2025-01-01", "2025-01-02")
    scan = _scan(tmp_path)
    assert [table for table, _ in scan.snapshot_changes] == ["customers"]
    assert scan.snapshot_changes[0][1].startswith("2025-01-03:")
    assert {k: [t for t, _ in v] for k, v in scan.daily_ranges.items()} == {
        ("2025-01-01", "2025-01-02"): ["transactions", "chargebacks"],
        ("2025-01-04", "2025-01-04"): ["transactions"],
    }
    # the next look at an unchanged folder finds nothing
    again = _scan(tmp_path, scan.cursor())
    assert not again.snapshot_changes and not again.daily_ranges and not again.skipped


def test_daily_files_wait_for_the_warehouse_without_being_recorded(tmp_path):
    _land(tmp_path, "transactions", "2025-01-01", "2025-01-02")
    scan = _scan(tmp_path, built=False)
    assert scan.waiting == 2 and not scan.daily_ranges
    assert json.loads(scan.cursor())["transactions"] == {}
    assert len(_scan(tmp_path, scan.cursor()).daily_ranges) == 1


def test_ambiguous_and_out_of_range_files_are_named_with_a_reason(tmp_path):
    _land(tmp_path, "transactions", "2025-01-01", "2025-01-02")
    _land(tmp_path, "transactions", "2025-01-01", suffix=".parquet")
    _land(tmp_path, "chargebacks", "2024-12-31")
    scan = _scan(tmp_path)
    # the ambiguous day is a run of its own (which fails naming both files); the other day
    # is not held up by it
    assert {k: [t for t, _ in v] for k, v in scan.daily_ranges.items()} == {
        ("2025-01-01", "2025-01-01"): ["transactions"],
        ("2025-01-02", "2025-01-02"): ["transactions"],
    }
    assert any("a second file for transactions on 2025-01-01" in m for m in scan.skipped)
    assert any("2024-12-31 is outside the daily partitions" in m for m in scan.skipped)
