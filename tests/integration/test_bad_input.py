"""A malformed delivery through the real raw asset: bad rows are quarantined with file, row,
column and reason; within the threshold the good rows land, over it the check fails, stops the
run and the day keeps what it had; loaded data survives."""

import csv

import dagster as dg

from data_platform.definitions import defs
from data_platform.raw.landing import LandingFileError
from tests.conftest import query

TRANSACTIONS = dg.AssetKey(["raw", "transactions"])


def _raw_transactions():
    return defs.get_assets_def(TRANSACTIONS)


def _corrupt(path, lines_to_break: int) -> list[int]:
    """Break the amount of the first N data lines of a CSV; returns their line numbers."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    amount = rows[0].index("amount")
    for row in rows[1 : 1 + lines_to_break]:
        row[amount] = "twelve"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return list(range(2, 2 + lines_to_break))  # the header is line 1


def _csv_day(landing):
    return sorted((landing / "transactions").glob("*.csv"))[0]


def test_a_malformed_file_lands_good_rows_quarantines_bad_and_fails_the_check(
    instance, resources, warehouse, landing
):
    path = _csv_day(landing)
    day = path.stem.split("_")[-1]
    rows = len(path.read_text().splitlines()) - 1
    broken_lines = _corrupt(path, 30)  # well over the 1% threshold

    result = dg.materialize(
        [_raw_transactions()],
        partition_key=day,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    # the blocking check failed, so the run failed after loading
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["rejected_share"].value > 0.01

    # over the threshold the delivery replaces nothing: the day keeps the rows it had (none)
    assert query(warehouse, "select count(*) from raw.transactions") == [(0,)]
    quarantined = query(
        warehouse,
        "select source_file, source_row, column_name, reason, value from raw.quarantine "
        "order by source_row",
    )
    assert [q[1] for q in quarantined] == broken_lines
    assert {(q[0], q[2], q[3], q[4]) for q in quarantined} == {
        (str(path), "amount", "not a valid decimal(12, 2)", "twelve")
    }
    mat = instance.get_latest_materialization_event(TRANSACTIONS).asset_materialization
    assert mat.metadata["rows_rejected"].value == 30
    assert mat.metadata["rows_loaded"].value == 0 and rows > 30
    assert "amount: not a valid decimal(12, 2)" in mat.metadata["rejections"].value


def test_a_few_bad_rows_pass_the_check(instance, resources, warehouse, landing):
    path = _csv_day(landing)
    day = path.stem.split("_")[-1]
    _corrupt(path, 1)
    result = dg.materialize(
        [_raw_transactions()], partition_key=day, instance=instance, resources=resources
    )
    assert result.success
    assert result.get_asset_check_evaluations()[0].passed
    assert query(warehouse, "select count(*) from raw.quarantine") == [(1,)]


def test_an_unloadable_file_fails_by_name_and_keeps_what_was_loaded(
    instance, resources, warehouse, landing
):
    path = _csv_day(landing)
    day = path.stem.split("_")[-1]
    assert dg.materialize(
        [_raw_transactions()], partition_key=day, instance=instance, resources=resources
    ).success
    before = query(warehouse, "select * from raw.transactions order by transaction_id")

    path.write_text("transaction_id;customer_id;amount\n1;2;3\n")  # wrong delimiter -> columns
    result = dg.materialize(
        [_raw_transactions()],
        partition_key=day,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    while error.cause is not None:  # Dagster wraps the asset's exception
        error = error.cause
    message = error.message
    assert error.cls_name == LandingFileError.__name__
    assert str(path) in message and "wrong columns for raw.transactions" in message
    assert query(warehouse, "select * from raw.transactions order by transaction_id") == before
    ((source_file, reason),) = query(
        warehouse, "select source_file, reason from raw.quarantine where source_row is null"
    )
    assert source_file == str(path) and reason in message
