"""Deliveries that must not be loaded as they are, through the real raw asset (issue 13, cases
5c, 5d, 5e and 7): a file still being written, a day of bad rows, two files for one day, a link
out of the landing folder. The data already loaded stays as it was; the fault is in the
quarantine with the file named."""

import csv
import os
import threading
import time

import dagster as dg

from data_platform.definitions import defs
from data_platform.raw.landing import LandingFileError
from tests.conftest import query

TRANSACTIONS = dg.AssetKey(["raw", "transactions"])
AN_HOUR_AGO = time.time() - 3600


def _materialize(instance, resources, first: str, last: str | None = None):
    return dg.materialize(
        [defs.get_assets_def(TRANSACTIONS)],
        instance=instance,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last or first,
        },
        raise_on_error=False,
    )


def _error(result) -> tuple[str, str]:
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    while error.cause is not None:  # Dagster wraps the asset's exception
        error = error.cause
    return error.cls_name, error.message


def _days(landing) -> list:
    return sorted((landing / "transactions").glob("*.csv"))


def _day(path) -> str:
    return path.stem.split("_")[-1]


def _rows_by_day(warehouse) -> dict[str, int]:
    return dict(
        query(
            warehouse,
            "select _partition_date::varchar, count(*) from raw.transactions group by 1",
        )
    )


def test_a_day_of_bad_rows_keeps_the_rows_it_had(instance, resources, warehouse, landing):
    path = _days(landing)[0]
    day = _day(path)
    assert _materialize(instance, resources, day).success
    before = query(warehouse, "select * from raw.transactions order by transaction_id")

    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    amount = rows[0].index("amount")
    for row in rows[1:]:
        row[amount] = "twelve"  # every row of the re-delivery is bad
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))

    result = _materialize(instance, resources, day)
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert query(warehouse, "select * from raw.transactions order by transaction_id") == before
    # the re-delivery's rejected rows are in the quarantine all the same
    assert query(
        warehouse, "select count(*), min(source_file) from raw.quarantine where value = 'twelve'"
    ) == [(len(rows) - 1, str(path))]


def test_two_files_for_one_day_fail_that_day_alone(instance, resources, warehouse, landing):
    first, middle, last = sorted((landing / "transactions").iterdir())[:3]  # three days
    second = middle.with_suffix(".csv" if middle.suffix == ".parquet" else ".parquet")
    second.write_bytes(b"a second delivery of the day")
    os.utime(second, (AN_HOUR_AGO, AN_HOUR_AGO))

    result = _materialize(instance, resources, _day(first), _day(last))
    assert not result.success
    # the other days of the range loaded
    assert set(_rows_by_day(warehouse)) == {_day(first), _day(last)}
    cls_name, message = _error(result)
    assert cls_name == LandingFileError.__name__
    assert str(middle) in message and str(second) in message
    ((partition_key, reason),) = query(
        warehouse, "select partition_key, reason from raw.quarantine where source_row is null"
    )
    assert partition_key == _day(middle)
    assert str(middle) in reason and str(second) in reason


def test_a_symlink_out_of_the_landing_folder_is_not_read(
    instance, resources, warehouse, landing, tmp_path
):
    path = _days(landing)[0]
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/sbin/nologin\n")
    path.unlink()
    path.symlink_to(secret)

    result = _materialize(instance, resources, _day(path))
    assert not result.success
    cls_name, message = _error(result)
    assert cls_name == LandingFileError.__name__
    assert str(path) in message and "outside the landing folder" in message
    assert query(warehouse, "select count(*) from raw.transactions") == [(0,)]
    quarantined = query(warehouse, "select source_row, value, record from raw.quarantine")
    assert [q[0] for q in quarantined] == [None]
    assert not any("root:x" in str(q) for q in quarantined)


def test_a_file_still_being_written_is_refused(instance, resources, warehouse, landing):
    path = _days(landing)[0]
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:20]))  # a writer has written the first 19 rows so far
    stop = threading.Event()

    def writer() -> None:
        with path.open("a") as f:
            for line in lines[20:]:
                if stop.wait(0.2):
                    return
                f.write(line)
                f.flush()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = _materialize(instance, resources, _day(path))
    finally:
        stop.set()
        thread.join()
    assert not result.success
    cls_name, message = _error(result)
    assert cls_name == LandingFileError.__name__
    assert str(path) in message and "still being written" in message
    assert query(warehouse, "select count(*) from raw.transactions") == [(0,)]
    assert query(warehouse, "select source_file from raw.quarantine where source_row is null") == [
        (str(path),)
    ]
