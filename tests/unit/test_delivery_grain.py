"""Delivery grain (issue 14, item 2): which file covers which partition, and where each row of a
month's, an hour's or a span file goes, on real files and a DuckDB file (no Dagster). Every row
read is loaded, quarantined with a reason naming file, line and column, held back, or counted as
another range's."""

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from data_platform.raw.contract import ColumnContract, SourceContract, contracts_from_yml
from data_platform.raw.landing import (
    PartitionWindow,
    file_key,
    file_window,
    one_file_per_partition,
    plan_spread,
)
from data_platform.raw.placement import load_spread
from data_platform.raw.run_load import load_table

AN_HOUR_AGO = time.time() - 3600
HEADER = "trip_id,started_at,minutes"


def _contract(delivery: str, pattern: str) -> SourceContract:
    return SourceContract(
        source_name="bikes",
        table="trips",
        schema="raw",
        asset_key=("raw", "trips"),
        landing_pattern=pattern,
        columns=(
            ColumnContract("trip_id", "varchar", required=True, unique=True),
            ColumnContract("started_at", "timestamp"),
            ColumnContract("minutes", "integer", required=True),
        ),
        partition_column="started_at",
        delivery=delivery,
        max_rejected_share=0.5,
    )


MONTHLY = _contract("month", "trips/trips_{month}.*")
SPAN = _contract("span", "trips/history*.csv")
HOURLY = _contract("hour", "trips/trips_{hour}.csv")


def _days(first: str, n: int) -> list[PartitionWindow]:
    start = datetime.fromisoformat(first)
    return [
        PartitionWindow(
            (start + timedelta(days=i)).date().isoformat(),
            start + timedelta(days=i),
            start + timedelta(days=i + 1),
        )
        for i in range(n)
    ]


def _land(landing: Path, name: str, rows: list[str]) -> Path:
    path = landing / "trips" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    return path


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def _rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


# --- the contract key ------------------------------------------------------------------------


def test_the_delivery_key_is_read_and_snapshot_true_still_means_snapshot(tmp_path):
    yml = tmp_path / "_s__sources.yml"
    table = "{name: %s, config: {meta: {headwater: {landing_pattern: 'x/x_{date}.csv', %s}}}}"
    yml.write_text(
        "sources: [{name: s, tables: ["
        + ", ".join(
            [
                table % ("a", "delivery: month"),
                table % ("b", "snapshot: true"),
                table % ("c", "partitioned_by: at"),
            ]
        )
        + "]}]"
    )
    found = {c.table: (c.delivery, c.snapshot) for c in contracts_from_yml(yml)}
    assert found == {"a": ("month", False), "b": ("snapshot", True), "c": ("day", False)}
    yml.write_text(yml.read_text().replace("delivery: month", "delivery: weekly"))
    with pytest.raises(ValueError, match="delivery 'weekly' is not one of"):
        contracts_from_yml(yml)


# --- which file covers which partition ---------------------------------------------------------


def test_a_file_name_gives_the_hour_day_or_month_it_covers():
    path = Path("trips/trips_2025-02.csv")
    assert file_key(MONTHLY, path) == "2025-02"
    assert file_window(MONTHLY, "2025-02") == (datetime(2025, 2, 1), datetime(2025, 3, 1))
    assert file_window(MONTHLY, "2025-12") == (datetime(2025, 12, 1), datetime(2026, 1, 1))
    assert file_key(HOURLY, Path("trips_2025-02-03T07.csv")) == "2025-02-03T07"
    assert file_window(HOURLY, "2025-02-03T07") == (
        datetime(2025, 2, 3, 7),
        datetime(2025, 2, 3, 8),
    )
    assert file_key(SPAN, Path("history_2011_2012.csv")) == "history_2011_2012.csv"
    assert file_window(SPAN, "history_2011_2012.csv") is None
    assert file_key(MONTHLY, Path("trips/trips_2025-13.csv")) is None  # not a month


def test_only_a_day_file_per_day_partition_is_loaded_one_to_one():
    day = _contract("day", "trips/trips_{date}.csv")
    assert one_file_per_partition(day, _days("2025-01-01", 3))
    assert not one_file_per_partition(MONTHLY, _days("2025-01-01", 3))
    hours = [PartitionWindow("h", datetime(2025, 1, 1), datetime(2025, 1, 1, 1))]
    assert not one_file_per_partition(day, hours)


def test_a_range_reads_each_month_file_once_and_a_partition_no_file_covers_fails_alone(
    tmp_path,
):
    jan = _land(tmp_path, "trips_2025-01.csv", [])
    feb = _land(tmp_path, "trips_2025-02.csv", [])
    _land(tmp_path, "trips_2024-12.csv", [])  # before the range: not read
    plan = plan_spread(MONTHLY, tmp_path, _days("2025-01-30", 32))  # Jan 30 .. Mar 2
    assert list(plan.covers) == [jan, feb]
    assert plan.covers[jan] == ["2025-01-30", "2025-01-31"]
    assert len(plan.covers[feb]) == 28
    assert [f.partition_key for f in plan.faults] == ["2025-03-01", "2025-03-02"]
    assert "no landing file for trips covers partition 2025-03-01" in plan.faults[0].message


def test_two_files_for_one_month_fail_that_months_partitions_only(tmp_path):
    _land(tmp_path, "trips_2025-01.csv", [])
    _land(tmp_path, "trips_2025-02.csv", [])
    (tmp_path / "trips" / "trips_2025-02.parquet").write_bytes(b"x")
    plan = plan_spread(MONTHLY, tmp_path, _days("2025-01-31", 2))
    assert [f.partition_key for f in plan.faults] == ["2025-02-01"]
    assert [p.name for p in plan.covers] == ["trips_2025-01.csv"]


def test_every_span_file_may_hold_every_partition(tmp_path):
    a = _land(tmp_path, "history_a.csv", [])
    b = _land(tmp_path, "history_b.csv", [])
    plan = plan_spread(SPAN, tmp_path, _days("2011-01-01", 3))
    assert plan.covers == {a: ["2011-01-01", "2011-01-02", "2011-01-03"], b: plan.covers[a]}
    assert not plan.faults


# --- where each row goes -----------------------------------------------------------------------


def _history(tmp_path) -> Path:
    return _land(
        tmp_path,
        "history.csv",
        [
            "t1,2010-12-31 23:00:00,5",  # line 2: before the first partition
            "t2,2011-01-01 08:00:00,7",  # line 3: 2011-01-01
            "t3,2011-01-01 09:00:00,x",  # line 4: 2011-01-01, bad minutes
            "t4,,4",  # line 5: no partition column
            "t5,yesterday,4",  # line 6: not a timestamp
            "t6,2011-01-02 10:00:00,3",  # line 7: 2011-01-02
            "t7,2011-01-03 10:00:00,3",  # line 8: a partition outside this run
            "t8,2011-01-04 00:00:00,3",  # line 9: after the last partition
        ],
    )


def test_a_span_file_places_each_row_and_every_row_is_accounted_for(con, tmp_path):
    path = _history(tmp_path)
    windows = _days("2011-01-01", 2)
    bounds = (datetime(2011, 1, 1), datetime(2011, 1, 4))  # the partitions: Jan 1 .. Jan 3
    result = load_spread(con, SPAN, plan_spread(SPAN, tmp_path, windows), windows, bounds, "r1")
    (f,) = result.files
    assert f.source_file == str(path)
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined, f.rows_other_partitions) == (8, 2, 5, 1)
    assert f.balanced and f.rows_held_back == 0
    assert _rows(con, "select trip_id, _partition_date::varchar from raw.trips order by 1") == [
        ("t2", "2011-01-01"),
        ("t6", "2011-01-02"),
    ]
    quarantined = _rows(
        con,
        "select source_row, partition_key, column_name, reason from raw.quarantine order by 1",
    )
    # rows in no partition: quarantined without one, the reason naming file, line and column
    placeless = {(q[0], q[1]) for q in quarantined if q[2] == "started_at"}
    assert placeless == {(2, None), (5, None), (6, None), (9, None)}
    reasons = {q[0]: q[3] for q in quarantined if q[3].startswith("history.csv")}
    assert reasons[2].startswith("history.csv line 2, column started_at: 2010-12-31 23:00:00")
    assert "outside the partitions (2011-01-01" in reasons[2]
    assert "null or not a timestamp" in reasons[5] and "line 5" in reasons[5]
    assert "outside the partitions" in reasons[9]
    # a broken rule of a row in a partition of the run is quarantined with its partition
    assert (4, "2011-01-01", "minutes") in [(q[0], q[1], q[2]) for q in quarantined]
    by_key = {
        r.partition_key: (r.rows_read, r.rows_loaded, r.rows_rejected) for r in result.partitions
    }
    assert by_key == {"2011-01-01": (2, 1, 1), "2011-01-02": (1, 1, 0)}


def test_loading_a_span_file_again_changes_nothing(con, tmp_path):
    path = _history(tmp_path)
    windows = _days("2011-01-01", 3)
    bounds = (datetime(2011, 1, 1), datetime(2011, 1, 4))
    plan = plan_spread(SPAN, tmp_path, windows)
    load_spread(con, SPAN, plan, windows, bounds, "r1")
    snapshot = [
        _rows(con, "select * exclude (_loaded_at) from raw.trips order by all"),
        _rows(con, "select * exclude (run_id, quarantined_at) from raw.quarantine order by all"),
    ]
    again = load_spread(con, SPAN, plan, windows, bounds, "r2")
    assert again.files[0].balanced and again.files[0].rows_loaded == 3
    assert snapshot == [
        _rows(con, "select * exclude (_loaded_at) from raw.trips order by all"),
        _rows(con, "select * exclude (run_id, quarantined_at) from raw.quarantine order by all"),
    ]
    assert str(path) in {r[0] for r in _rows(con, "select _source_file from raw.trips")}


def test_a_row_outside_its_month_file_is_quarantined_not_loaded(con, tmp_path):
    _land(tmp_path, "trips_2025-01.csv", ["t1,2025-01-31 10:00:00,3", "t2,2025-02-01 10:00:00,3"])
    windows = _days("2025-01-31", 1)
    load = load_table(con, MONTHLY, tmp_path, windows, (datetime(2025, 1, 1), None), "r1", print)
    (f,) = load.files
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined) == (2, 1, 1) and f.balanced
    ((reason,),) = _rows(con, "select reason from raw.quarantine")
    assert "line 3, column started_at" in reason and "outside the file's month 2025-01" in reason


def test_hour_files_of_one_day_load_together_into_it(con, tmp_path):
    _land(tmp_path, "trips_2025-01-01T08.csv", ["t1,2025-01-01 08:10:00,3"])
    _land(tmp_path, "trips_2025-01-01T09.csv", ["t2,2025-01-01 09:10:00,3"])
    windows = _days("2025-01-01", 1)
    load = load_table(con, HOURLY, tmp_path, windows, (datetime(2025, 1, 1), None), "r1", print)
    assert [f.rows_loaded for f in load.files] == [1, 1]
    assert _rows(con, "select trip_id from raw.trips order by 1") == [("t1",), ("t2",)]
    assert load.statuses() == {"2025-01-01": ("loaded", "")}


def test_an_unreadable_month_file_fails_its_partitions_alone(con, tmp_path):
    _land(tmp_path, "trips_2025-01.csv", ["t1,2025-01-31 10:00:00,3"])
    bad = tmp_path / "trips" / "trips_2025-02.csv"
    bad.write_text(
        "trip_id,when\nt2,2025-02-01\n"
    )  # a header of other columns: the file is unreadable
    os.utime(bad, (AN_HOUR_AGO, AN_HOUR_AGO))
    windows = _days("2025-01-31", 2)
    load = load_table(con, MONTHLY, tmp_path, windows, (datetime(2025, 1, 1), None), "r1", print)
    assert load.failed_partitions == ["2025-02-01"]
    assert _rows(con, "select trip_id from raw.trips") == [("t1",)]
    assert load.statuses()["2025-02-01"][0] == "failed"
    assert str(bad) in load.statuses()["2025-02-01"][1]
    ((partition, source_file),) = _rows(
        con, "select partition_key, source_file from raw.quarantine where source_row is null"
    )
    assert (partition, source_file) == ("2025-02-01", str(bad))


def test_a_partition_over_the_threshold_keeps_its_rows_and_its_good_rows_are_held_back(
    con, tmp_path
):
    windows = _days("2025-01-01", 2)
    bounds = (datetime(2025, 1, 1), None)
    _land(tmp_path, "trips_2025-01.csv", ["t1,2025-01-01 10:00:00,3", "t2,2025-01-02 10:00:00,3"])
    load_table(con, MONTHLY, tmp_path, windows, bounds, "r1", print)
    _land(
        tmp_path,
        "trips_2025-01.csv",
        ["t1,2025-01-01 10:00:00,4", "t3,2025-01-02 10:00:00,x", "t4,2025-01-02 11:00:00,x"]
        + ["t5,2025-01-02 12:00:00,1"],
    )
    load = load_table(con, MONTHLY, tmp_path, windows, bounds, "r2", print)
    (f,) = load.files
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined, f.rows_held_back) == (4, 1, 2, 1)
    assert f.balanced
    # Jan 2 (2 of 3 rows bad, threshold 50%) kept t2; Jan 1 was replaced
    assert _rows(con, "select trip_id, minutes from raw.trips order by 1") == [("t1", 4), ("t2", 3)]
    assert load.statuses()["2025-01-02"][0] == "refused"
    assert load.statuses()["2025-01-01"] == ("loaded", "")


# --- the landing sensor ----------------------------------------------------------------------


def test_the_sensor_asks_for_the_partitions_a_month_or_span_file_covers(tmp_path):
    import dagster as dg

    from data_platform.raw.landing_scan import scan_landing
    from data_platform.raw.landing_sensor import keys_for

    partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-03-01")

    def scan(contract, cursor=None):
        return scan_landing(
            cursor,
            [contract],
            tmp_path,
            True,
            partitions.has_partition_key,
            keys_for=keys_for(partitions),
        )

    _land(tmp_path, "trips_2025-01.csv", [])
    _land(tmp_path, "trips_2024-12.csv", [])  # before the partitions: named, not asked for
    first = scan(MONTHLY)
    assert list(first.daily_ranges) == [("2025-01-01", "2025-01-31")]
    assert any("trips_2024-12.csv: 2024-12 is outside the partitions" in m for m in first.skipped)
    assert not scan(MONTHLY, first.cursor()).daily_ranges  # nothing new

    _land(tmp_path, "history.csv", [])
    assert list(scan(SPAN).daily_ranges) == [("2025-01-01", "2025-02-28")]


def test_partitions_finer_than_a_day_replace_only_their_own_rows(con, tmp_path):
    _land(tmp_path, "trips_2025-01.csv", ["t1,2025-01-01 08:10:00,3", "t2,2025-01-01 09:10:00,3"])
    hours = [
        PartitionWindow(
            f"2025-01-01-{h:02d}:00", datetime(2025, 1, 1, h), datetime(2025, 1, 1, h + 1)
        )
        for h in (8, 9)
    ]
    bounds = (datetime(2025, 1, 1), None)
    load_table(con, MONTHLY, tmp_path, hours, bounds, "r1", print)
    _land(tmp_path, "trips_2025-01.csv", ["t1,2025-01-01 08:10:00,5", "t2,2025-01-01 09:10:00,6"])
    load = load_table(con, MONTHLY, tmp_path, hours[:1], bounds, "r2", print)
    assert (load.files[0].rows_loaded, load.files[0].rows_other_partitions) == (1, 1)
    # the 08:00 partition was replaced; the 09:00 one, which shares its day, kept its row
    assert _rows(con, "select trip_id, minutes from raw.trips order by 1") == [("t1", 5), ("t2", 3)]
