"""A delivery whose parse would lose rows, through the real raw asset: the run fails naming the
file and the line, the fault is quarantined, and the day keeps the rows it had (issue 13, case
1: a stray quote on line 200 once loaded "198 rows, 1 rejected" and dropped the rest)."""

import csv

import dagster as dg

from data_platform.definitions import defs
from data_platform.raw.landing import LandingFileError
from tests.conftest import query

TRANSACTIONS = dg.AssetKey(["raw", "transactions"])


def _export_with_stray_quote(path, line_no: int) -> None:
    """The file as many tools export CSV (quotes only where needed), with an unterminated quote
    opening the amount on `line_no` (the header is line 1)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    lines = path.read_text().splitlines()
    fields = lines[line_no - 1].split(",")
    fields[rows[0].index("amount")] = '"' + fields[rows[0].index("amount")]
    lines[line_no - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


def test_a_stray_quote_fails_the_run_and_keeps_the_day(instance, resources, warehouse, landing):
    path = sorted((landing / "transactions").glob("*.csv"))[0]
    day = path.stem.split("_")[-1]
    raw = defs.get_assets_def(TRANSACTIONS)
    assert dg.materialize([raw], partition_key=day, instance=instance, resources=resources).success
    before = query(warehouse, "select * from raw.transactions order by transaction_id")
    assert len(before) > 400

    _export_with_stray_quote(path, 200)
    result = dg.materialize(
        [raw], partition_key=day, instance=instance, resources=resources, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    while error.cause is not None:  # Dagster wraps the asset's exception
        error = error.cause
    assert error.cls_name == LandingFileError.__name__
    assert str(path) in error.message and "line 200" in error.message
    assert query(warehouse, "select * from raw.transactions order by transaction_id") == before
    ((source_file, reason),) = query(
        warehouse, "select source_file, reason from raw.quarantine where source_row is null"
    )
    assert source_file == str(path) and "line 200" in reason and reason in error.message
