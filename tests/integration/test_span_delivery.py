"""The real bike-sharing hour.csv (17,379 hourly rows, 2011-2012) as a `span` delivery through
the real raw asset (issue 14, item 2): one file, read once for a range of 731 day partitions,
every row placed into its day or quarantined with file, line and column, and the asset's
metadata reconciling the file: rows read = loaded + quarantined + of other partitions."""

import csv
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from data_platform.raw.assets import build_raw_asset
from data_platform.raw.contract import contracts_from_yml
from headwater.headless import ONE_PLANNED_EVENT_PER_ASSET
from headwater_core.config import environ
from headwater_core.resources import LandingZone
from tests.conftest import ROOT, query

HOUR_CSV = ROOT.parent / "shared" / "data" / "bike_sharing" / "hour.csv"
RENTALS = dg.AssetKey(["raw", "bike_rentals"])
INTEGERS = "instant season yr mnth hr holiday weekday workingday weathersit casual registered cnt"
SOURCES = """
sources:
  - name: bike_sharing
    schema: raw
    tables:
      - name: bike_rentals
        description: Hourly rentals, Washington D.C., 2011-2012, one file for the whole span.
        config:
          meta:
            headwater:
              landing_pattern: "bike/hour*.csv"
              delivery: span
              partitioned_by: dteday
        columns:
"""


def _contract(tmp_path: Path):
    header = HOUR_CSV.read_text().splitlines()[0].split(",")
    types = {c: "integer" for c in INTEGERS.split()} | {"dteday": "date"}
    columns = "".join(
        f"          - {{name: {c}, data_type: {types.get(c, 'double')}"
        + (", data_tests: [unique, not_null]" if c == "instant" else "")
        + "}\n"
        for c in header
    )
    yml = tmp_path / "_bike_sharing__sources.yml"
    yml.write_text(SOURCES + columns)
    (contract,) = contracts_from_yml(yml)
    return contract


def _land(tmp_path: Path, edit=None) -> Path:
    landing = tmp_path / "landing"
    path = landing / "bike" / "hour.csv"
    path.parent.mkdir(parents=True)
    shutil.copyfile(HOUR_CSV, path)
    if edit:
        lines = path.read_text().splitlines(keepends=True)
        edit(lines)
        path.write_text("".join(lines))
    os.utime(path, (time.time() - 3600,) * 2)
    return landing


def _days_of(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return [row["dteday"] for row in csv.DictReader(f)]


def _run(tmp_path, landing, partitions, first, last, instance, warehouse):
    asset = build_raw_asset(_contract(tmp_path), partitions)
    # as `headwater materialize` runs a range: one planned event per asset, not per day
    with environ({ONE_PLANNED_EVENT_PER_ASSET: "true"}):
        result = dg.materialize(
            [asset],
            instance=instance,
            resources={"warehouse": warehouse, "landing": LandingZone(path=str(landing))},
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
            raise_on_error=False,
        )
    return result, _seconds(instance, result.run_id)


def _seconds(instance, run_id: str) -> tuple[float, float]:
    """The step's time to its output (the load), and to its end (with Dagster recording one
    materialisation per partition)."""
    stamps = {}
    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else None
        if kind in ("STEP_START", "STEP_OUTPUT", "STEP_SUCCESS", "STEP_FAILURE"):
            stamps.setdefault(kind, entry.timestamp)
    end = stamps.get("STEP_SUCCESS", stamps.get("STEP_FAILURE", 0.0))
    return stamps["STEP_OUTPUT"] - stamps["STEP_START"], end - stamps["STEP_START"]


def _metadata(result) -> dict:
    # a range's materialisation is one event per partition, each with the run's metadata
    mat = result.get_asset_materialization_events()[0].event_specific_data.materialization
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.mark.skipif(not HOUR_CSV.exists(), reason="the shared bike-sharing data set is missing")
def test_hour_csv_loads_whole_in_one_read_and_every_row_is_accounted_for(
    tmp_path, instance, warehouse
):
    def damage(lines: list[str]) -> None:
        for number, day in ((10, ""), (20, "2011-13-45")):  # no day, and not a date
            fields = lines[number - 1].split(",")
            fields[1] = day
            lines[number - 1] = ",".join(fields)

    landing = _land(tmp_path, damage)
    partitions = dg.DailyPartitionsDefinition(start_date="2011-01-01", end_date="2013-01-01")
    result, seconds = _run(
        tmp_path, landing, partitions, "2011-01-01", "2012-12-31", instance, warehouse
    )
    assert result.success
    print(
        f"\nhour.csv, 731 day partitions in one run: loaded in {seconds[0]:.1f} s, "
        f"step {seconds[1]:.1f} s"
    )
    metadata = _metadata(result)
    path = str(landing / "bike" / "hour.csv")
    counts = metadata["files"][path]
    assert counts == {
        "read": 17_379,
        "loaded": 17_377,
        "quarantined": 2,
        "held_back": 0,
        "other_partitions": 0,
    }
    assert metadata["rows_reconciled"] is True
    assert query(
        warehouse, "select count(*), count(distinct _partition_date) from raw.bike_rentals"
    ) == [(17_377, 731)]
    quarantined = query(
        warehouse,
        "select source_file, source_row, column_name, reason, partition_key from raw.quarantine "
        "where reason like 'hour.csv line%' order by source_row",
    )
    assert [(q[0], q[1], q[2], q[4]) for q in quarantined] == [
        (path, 10, "dteday", None),
        (path, 20, "dteday", None),
    ]
    assert quarantined[0][3].startswith("hour.csv line 10, column dteday: null or not a")
    # the step read the file once: one staged file for the whole range
    assert len(metadata["files"]) == 1


@pytest.mark.skipif(not HOUR_CSV.exists(), reason="the shared bike-sharing data set is missing")
def test_rows_before_and_after_the_partitions_are_quarantined_and_other_days_counted(
    tmp_path, instance, warehouse
):
    landing = _land(tmp_path)
    days = _days_of(HOUR_CSV)
    # partitions 2011-03-01 .. 2012-10-31; this run loads March 2011 only
    partitions = dg.DailyPartitionsDefinition(start_date="2011-03-01", end_date="2012-11-01")
    result, _ = _run(tmp_path, landing, partitions, "2011-03-01", "2011-03-31", instance, warehouse)
    assert result.success
    metadata = _metadata(result)
    counts = metadata["files"][str(landing / "bike" / "hour.csv")]
    outside = sum(1 for d in days if d < "2011-03-01" or d >= "2012-11-01")
    march = sum(1 for d in days if d.startswith("2011-03"))
    assert counts == {
        "read": len(days),
        "loaded": march,
        "quarantined": outside,
        "held_back": 0,
        "other_partitions": len(days) - march - outside,
    }
    assert metadata["rows_read"] == 17_379
    assert (metadata["rows_loaded"], metadata["rows_quarantined"]) == (march, outside)
    assert query(warehouse, "select count(*) from raw.bike_rentals") == [(march,)]
    ((n, first, last),) = query(
        warehouse,
        "select count(*), min(source_row), max(source_row) from raw.quarantine "
        "where reason like '%is outside the partitions (2011-03-01%'",
    )
    assert n == outside and first == 2  # line 2 is the first data line, 2011-01-01
    assert last == len(days) + 1
