"""Landing files that must not load as they are: still being written, two for one day, a link
out of the landing folder. On real files in a temporary folder (no Dagster)."""

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from data_platform.raw.contract import load_contracts
from data_platform.raw.landing import (
    LandingFileError,
    find_landing_files,
    plan_load,
    wait_until_settled,
)
from data_platform.raw.landing_scan import scan_landing
from headwater_core.config import dbt_project_dir

CONTRACTS = load_contracts(dbt_project_dir())
CONTRACT_LIST = list(CONTRACTS.values())
TXN = CONTRACTS["transactions"]
AN_HOUR_AGO = time.time() - 3600


def _land(landing: Path, table: str, day: str, suffix: str = ".csv", age: float = 3600) -> Path:
    path = landing / table / f"{table}_{day}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("header\n")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def _scan(landing: Path, cursor: str | None = None):
    return scan_landing(cursor, CONTRACT_LIST, landing, True, lambda key: key >= "2025-01-01")


def _requested(scan) -> dict[tuple[str, str], list[str]]:
    return {k: sorted(t for t, _ in v) for k, v in scan.daily_ranges.items()}


# --- a file still being written (issue 13, case 5c) ----------------------------------------


def test_the_contract_has_a_settle_interval_of_a_few_seconds():
    assert 1 <= TXN.settle_seconds <= 10


def test_a_file_modified_within_the_settle_interval_waits_for_a_later_tick(tmp_path):
    _land(tmp_path, "transactions", "2025-01-01")
    fresh = _land(tmp_path, "transactions", "2025-01-02", age=0)
    scan = _scan(tmp_path)
    # the settled day is asked for; the one still being written is not, nor recorded as seen
    assert _requested(scan) == {("2025-01-01", "2025-01-01"): ["transactions"]}
    assert "2025-01-02" not in json.loads(scan.cursor())["transactions"]
    assert any(str(fresh) in m for m in scan.settling)

    # a later tick, once the file has not changed for the settle interval, asks for it
    os.utime(fresh, (AN_HOUR_AGO, AN_HOUR_AGO))
    again = _scan(tmp_path, scan.cursor())
    assert _requested(again) == {("2025-01-02", "2025-01-02"): ["transactions"]}


def test_a_snapshot_still_being_written_waits_too(tmp_path):
    _land(tmp_path, "customers", "2025-01-03", age=0)
    scan = _scan(tmp_path)
    assert scan.snapshot_changes == [] and "customers" not in json.loads(scan.cursor())


def test_the_loader_waits_out_the_settle_interval_then_loads_a_stable_file(tmp_path):
    contract = dataclasses.replace(TXN, settle_seconds=0.3)
    path = _land(tmp_path, "transactions", "2025-01-02", age=0)
    started = time.monotonic()
    stable, faults = wait_until_settled([("2025-01-02", path)], contract.settle_seconds)
    assert stable == [("2025-01-02", path)] and faults == []
    assert time.monotonic() - started >= 0.2


def test_the_loader_refuses_a_file_that_changes_during_the_settle_interval(tmp_path):
    path = _land(tmp_path, "transactions", "2025-01-02", age=0)
    old = _land(tmp_path, "transactions", "2025-01-01")

    def a_writer_at_work(seconds: float) -> None:
        with path.open("a") as f:
            f.write("t1,c1,m1,1.00,EUR,online,R01,2025-01-02 10:00:00\n")
        time.sleep(seconds)

    stable, faults = wait_until_settled(
        [("2025-01-01", old), ("2025-01-02", path)], 0.3, sleep=a_writer_at_work
    )
    assert stable == [("2025-01-01", old)]
    (fault,) = faults
    assert fault.partition_key == "2025-01-02" and fault.path == path
    assert str(path) in fault.message and "still being written" in fault.message


# --- two files for one day (issue 13, case 5e) ---------------------------------------------


def test_two_files_for_one_day_are_a_fault_of_that_day_only(tmp_path):
    for day in ("2025-01-01", "2025-01-02", "2025-01-03"):
        _land(tmp_path, "transactions", day)
    csv = tmp_path / "transactions" / "transactions_2025-01-02.csv"
    parquet = _land(tmp_path, "transactions", "2025-01-02", suffix=".parquet")

    plan = plan_load(TXN, tmp_path, ["2025-01-01", "2025-01-02", "2025-01-03"])
    assert [key for key, _ in plan.files] == ["2025-01-01", "2025-01-03"]
    (fault,) = plan.faults
    assert fault.partition_key == "2025-01-02"
    assert str(csv) in fault.message and str(parquet) in fault.message

    # the sensor asks for the other days, and for the ambiguous day alone (its run fails
    # naming both files and records the fault in the quarantine)
    scan = _scan(tmp_path)
    assert _requested(scan) == {
        ("2025-01-01", "2025-01-01"): ["transactions"],
        ("2025-01-02", "2025-01-02"): ["transactions"],
        ("2025-01-03", "2025-01-03"): ["transactions"],
    }
    assert not _requested(_scan(tmp_path, scan.cursor()))
    # removing one of the two files is a change of that day: asked for again
    parquet.unlink()
    assert _requested(_scan(tmp_path, scan.cursor())) == {
        ("2025-01-02", "2025-01-02"): ["transactions"]
    }


# --- a link out of the landing folder (issue 13, case 7) -----------------------------------


def test_a_symlink_out_of_the_landing_folder_is_refused_and_not_read(tmp_path):
    landing = tmp_path / "landing"
    outside = tmp_path / "secret.csv"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\n")
    link = landing / "transactions" / "transactions_2025-01-02.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    _land(landing, "transactions", "2025-01-01")
    # a link that stays inside the landing folder is an ordinary file
    inside = _land(landing, "archive", "2025-01-03")
    (landing / "transactions" / "transactions_2025-01-03.csv").symlink_to(inside)

    plan = plan_load(TXN, landing, ["2025-01-01", "2025-01-02", "2025-01-03"])
    assert [key for key, _ in plan.files] == ["2025-01-01", "2025-01-03"]
    (fault,) = plan.faults
    assert fault.partition_key == "2025-01-02" and fault.path == link
    assert str(link) in fault.message and "outside the landing folder" in fault.message
    with pytest.raises(LandingFileError, match="outside the landing folder"):
        find_landing_files(TXN, landing)


def test_a_symlinked_table_folder_out_of_the_landing_folder_is_refused(tmp_path):
    landing = tmp_path / "landing"
    elsewhere = tmp_path / "elsewhere"
    _land(elsewhere, "transactions", "2025-01-02")
    landing.mkdir()
    (landing / "transactions").symlink_to(elsewhere / "transactions")
    plan = plan_load(TXN, landing, ["2025-01-02"])
    assert plan.files == [] and "outside the landing folder" in plan.faults[0].message


def test_a_dangling_symlink_does_not_break_the_sensor(tmp_path):
    link = tmp_path / "transactions" / "transactions_2025-01-02.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "nowhere.csv")
    _land(tmp_path, "transactions", "2025-01-01")
    scan = _scan(tmp_path)
    assert ("2025-01-01", "2025-01-01") in _requested(scan)
