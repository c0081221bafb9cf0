"""Time partitions as configuration: read from dbt_project.yml, at every grain, for Dagster's
partitions, the range of a headless run and the landing of raw files (no Dagster instance)."""

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from data_platform.raw.contract import load_contracts
from data_platform.raw.ingest import load_file
from data_platform.raw.landing import list_landing_files
from headwater_core.config import dbt_project_dir
from headwater_core.partition_settings import (
    PartitionSettings,
    PartitionSettingsError,
    read_partition_settings,
)
from headwater_core.partitions import (
    PartitionRangeError,
    partition_keys_between,
    partitions_def,
    run_partition_window,
)

TXN = load_contracts(dbt_project_dir())["transactions"]
HEADER = "transaction_id,customer_id,merchant_id,amount,currency,channel,region_code,transacted_at"


def _project(tmp_path: Path, **partitions) -> Path:
    """A dbt project folder whose dbt_project.yml declares `partitions`."""
    dbt = tmp_path / "dbt_project"
    dbt.mkdir(parents=True)
    body = "".join(f"      {k}: {v}\n" for k, v in partitions.items())
    (dbt / "dbt_project.yml").write_text(f"name: p\nvars:\n  headwater:\n    partitions:\n{body}")
    return dbt


def test_the_demo_declares_daily_partitions_from_2025():
    settings = read_partition_settings(dbt_project_dir())
    assert (settings.start, settings.end, settings.grain, settings.timezone) == (
        "2025-01-01",
        None,
        "daily",
        "UTC",
    )
    definition = partitions_def(dbt_project_dir())
    assert isinstance(definition, dg.DailyPartitionsDefinition)
    assert definition.get_first_partition_key() == "2025-01-01"


@pytest.mark.parametrize(
    "grain, cls, first_keys",
    [
        ("hourly", dg.HourlyPartitionsDefinition, ["2011-01-01-00:00", "2011-01-01-01:00"]),
        ("daily", dg.DailyPartitionsDefinition, ["2011-01-01", "2011-01-02"]),
        # weeks start on Monday: the first whole week after a Saturday start
        ("weekly", dg.WeeklyPartitionsDefinition, ["2011-01-03", "2011-01-10"]),
        ("monthly", dg.MonthlyPartitionsDefinition, ["2011-01-01", "2011-02-01"]),
    ],
)
def test_each_grain_gives_its_partitions(tmp_path, grain, cls, first_keys):
    dbt = _project(tmp_path, start='"2011-01-01"', end='"2013-01-01"', grain=grain)
    definition = partitions_def(dbt)
    assert isinstance(definition, cls)
    keys = definition.get_partition_keys()
    assert keys[:2] == first_keys
    assert keys[-1] < "2013-01-01"
    expected = {"hourly": 17544, "daily": 731, "weekly": 104, "monthly": 24}[grain]
    assert len(keys) == expected


@pytest.mark.parametrize(
    "grain, key, window",
    [
        ("hourly", "2011-03-05-07:00", ("2011-03-05 07:00", "2011-03-05 08:00")),
        ("daily", "2011-03-05", ("2011-03-05 00:00", "2011-03-06 00:00")),
        ("weekly", "2011-02-28", ("2011-02-28 00:00", "2011-03-07 00:00")),
        ("monthly", "2011-02-01", ("2011-02-01 00:00", "2011-03-01 00:00")),
    ],
)
def test_each_grain_gives_a_partitions_window(grain, key, window):
    settings = PartitionSettings(start="2011-01-01", grain=grain)
    start, end = settings.window(key)
    assert (f"{start:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M}") == window
    assert settings.key_of(datetime.fromisoformat(window[0])) == key
    with pytest.raises(PartitionSettingsError, match="not"):
        settings.window(
            {"hourly": "2011-03-05-07:30", "daily": "2011-03-05-07:00"}.get(grain, "2011-03-03")
        )


def test_a_window_in_another_time_zone_is_given_in_utc():
    settings = PartitionSettings(start="2025-01-01", timezone="Europe/Paris")
    start, end = settings.window("2025-01-03")
    assert (start, end) == (
        datetime(2025, 1, 2, 23, tzinfo=UTC),
        datetime(2025, 1, 3, 23, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "partitions, message",
    [
        ({"grain": "yearly"}, "grain is 'yearly'; one of hourly, daily, weekly, monthly"),
        ({"start": '"01/01/2011"'}, "start is '01/01/2011'; a date like 2025-01-01"),
        ({"timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not a time zone"),
        ({"start": '"2012-01-01"', "end": '"2011-01-01"'}, "end 2011-01-01 is not after start"),
        ({"first": '"2011-01-01"'}, r"unknown key\(s\) \['first'\]"),
    ],
)
def test_a_bad_declaration_names_the_file_and_the_setting(tmp_path, partitions, message):
    dbt = _project(tmp_path, **partitions)
    with pytest.raises(PartitionSettingsError, match=message) as error:
        read_partition_settings(dbt)
    assert str(dbt / "dbt_project.yml") in str(error.value)


def test_history_from_2011_needs_only_the_setting(tmp_path):
    dbt = _project(tmp_path, start='"2011-01-01"')
    assert partition_keys_between("2011-01-01", "2011-01-03", dbt) == [
        "2011-01-01",
        "2011-01-02",
        "2011-01-03",
    ]


def test_a_range_outside_the_partitions_is_one_line_naming_the_setting(tmp_path):
    dbt = _project(tmp_path, start='"2011-01-01"', end='"2013-01-01"')
    with pytest.raises(PartitionRangeError) as before:
        partition_keys_between("2010-12-31", "2011-01-03", dbt)
    assert str(before.value) == (
        "2010-12-31 is before the first partition 2011-01-01 "
        "(vars.headwater.partitions.start in dbt_project/dbt_project.yml)"
    )
    with pytest.raises(PartitionRangeError) as after:
        partition_keys_between("2012-12-30", "2013-01-01", dbt)
    assert str(after.value) == (
        "2013-01-01 is after the last partition 2012-12-31 "
        "(vars.headwater.partitions.end in dbt_project/dbt_project.yml)"
    )
    with pytest.raises(PartitionRangeError, match="neither a date"):
        partition_keys_between("Jan 1", "2011-01-03", dbt)


def test_a_range_of_dates_covers_the_partitions_holding_them(tmp_path):
    monthly = _project(tmp_path / "m", start='"2011-01-01"', grain="monthly")
    assert partition_keys_between("2011-01-15", "2011-03-02", monthly) == [
        "2011-01-01",
        "2011-02-01",
        "2011-03-01",
    ]
    hourly = _project(tmp_path / "h", start='"2011-01-01"', grain="hourly")
    keys = partition_keys_between("2011-01-01", "2011-01-01", hourly)
    assert (len(keys), keys[0], keys[-1]) == (24, "2011-01-01-00:00", "2011-01-01-23:00")


# --- landing at each grain --------------------------------------------------------------------


def _contract(grain: str):
    return dataclasses.replace(TXN, partitions=PartitionSettings(start="2011-01-01", grain=grain))


@pytest.mark.parametrize(
    "grain, names, keys",
    [
        ("daily", ["2011-01-01", "2011-01-02"], ["2011-01-01", "2011-01-02"]),
        ("weekly", ["2011-01-03", "2011-01-10"], ["2011-01-03", "2011-01-10"]),
        ("monthly", ["2011-01-01", "2011-02-01"], ["2011-01-01", "2011-02-01"]),
    ],
)  # fmt: skip
def test_a_landing_files_partition_is_the_key_in_its_name(tmp_path, grain, names, keys):
    """Day files name their partition at a daily grain or coarser; hour files are a delivery of
    their own (`delivery: hour`, tests/unit/test_delivery_grain.py)."""
    folder = tmp_path / "transactions"
    folder.mkdir()
    for name in names:
        (folder / f"transactions_{name}.csv").write_text(HEADER + "\n")
    found = list_landing_files(_contract(grain), tmp_path)
    assert sorted(found.files) == keys
    assert not found.faults


@pytest.mark.parametrize(
    "grain, key, inside, outside",
    [
        ("hourly", "2011-01-01-05:00", ["2011-01-01 05:00:00", "2011-01-01 05:59:59"],
         ["2011-01-01 06:00:00", "2011-01-01 04:59:00"]),
        ("daily", "2011-01-02", ["2011-01-02 00:00:00", "2011-01-02 23:59:59"],
         ["2011-01-03 00:00:00", "2011-01-01 23:00:00"]),
        ("weekly", "2011-01-03", ["2011-01-03 00:00:00", "2011-01-09 23:00:00"],
         ["2011-01-10 00:00:00", "2011-01-02 12:00:00"]),
        ("monthly", "2011-01-01", ["2011-01-01 00:00:00", "2011-01-31 23:59:59"],
         ["2011-02-01 00:00:00", "2010-12-31 23:00:00"]),
    ],
)  # fmt: skip
def test_a_raw_partition_loads_the_rows_of_its_window(tmp_path, grain, key, inside, outside):
    contract = _contract(grain)
    path = tmp_path / f"transactions_{key.replace(':', '')}.csv"
    lines = [f"t{i},c1,m1,10.00,EUR,online,R01,{at}" for i, at in enumerate([*inside, *outside])]
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:
        result = load_file(con, contract, path, key, "run-1")
        assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (4, 2, 2)
        loaded = con.execute("select transaction_id from raw.transactions order by 1").fetchall()
        assert loaded == [("t0",), ("t1",)]
        reasons = con.execute(
            "select distinct reason from raw.quarantine where source_row is not null"
        ).fetchall()
        assert reasons == [(f"outside partition {key}",)]
        # re-loading the partition replaces exactly it
        load_file(con, contract, path, key, "run-2")
        assert con.execute("select count(*) from raw.transactions").fetchone() == (2,)
    finally:
        con.close()


def test_hours_of_one_day_are_partitions_of_their_own(tmp_path):
    contract = _contract("hourly")
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:
        for hour in ("05", "06"):
            path = tmp_path / f"transactions_2011-01-01-{hour}.csv"
            path.write_text(f"{HEADER}\nt{hour},c1,m1,1.00,EUR,online,R01,2011-01-01 {hour}:10\n")
            load_file(con, contract, path, f"2011-01-01-{hour}:00", "run-1")
        # the 06:00 hour re-loaded leaves the 05:00 hour as it was
        load_file(con, contract, path, "2011-01-01-06:00", "run-2")
        rows = con.execute("select transaction_id from raw.transactions order by 1").fetchall()
        assert rows == [("t05",), ("t06",)]
    finally:
        con.close()


def test_consecutive_partitions_of_each_grain_are_one_range():
    from data_platform.raw.landing_scan import consecutive_ranges

    monthly = PartitionSettings(start="2011-01-01", grain="monthly")
    keys = ["2011-01-01", "2011-02-01", "2011-04-01"]
    assert consecutive_ranges(keys, monthly) == [("2011-01-01", "2011-02-01"), ("2011-04-01",) * 2]
    hourly = PartitionSettings(start="2011-01-01", grain="hourly")
    keys = ["2011-01-01-22:00", "2011-01-01-23:00", "2011-01-02-00:00", "2011-01-02-02:00"]
    assert consecutive_ranges(keys, hourly) == [
        ("2011-01-01-22:00", "2011-01-02-00:00"),
        ("2011-01-02-02:00", "2011-01-02-02:00"),
    ]


def test_a_runs_window_is_its_partition_or_its_range():
    """What the unpartitioned warehouse step scopes its tests to: the partitions of its run."""
    day = datetime(2025, 1, 3, tzinfo=UTC)
    assert run_partition_window({"dagster/partition": "2025-01-03"}) == (
        day,
        day.replace(day=4),
    )
    ranged = {
        "dagster/asset_partition_range_start": "2025-01-03",
        "dagster/asset_partition_range_end": "2025-01-05",
    }
    assert run_partition_window(ranged) == (day, day.replace(day=6))
    # no partition, or a key of another partitioning: no window (every row is tested)
    assert run_partition_window({}) is None
    assert run_partition_window({"dagster/partition": "fraud_classifier"}) is None
