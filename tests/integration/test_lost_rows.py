"""A delivery whose parse would lose rows, through the real raw asset: the run fails naming the
file and the line, the fault is quarantined, and the day keeps the rows it had (issue 13, case
1: a stray quote on line 200 once loaded "198 rows, 1 rejected" and dropped the rest)."""

import csv

import dagster as dg

from data_platform.definitions import defs
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


def test_a_stray_quote_quarantines_its_line_and_the_rest_of_the_day_loads(
    instance, resources, warehouse, landing
):
    path = sorted((landing / "transactions").glob("*.csv"))[0]
    day = path.stem.split("_")[-1]
    raw = defs.get_assets_def(TRANSACTIONS)
    assert dg.materialize([raw], partition_key=day, instance=instance, resources=resources).success
    before = query(warehouse, "select transaction_id, _source_row from raw.transactions order by 2")
    assert len(before) > 400

    _export_with_stray_quote(path, 200)
    assert dg.materialize([raw], partition_key=day, instance=instance, resources=resources).success
    after = query(warehouse, "select transaction_id, _source_row from raw.transactions order by 2")
    assert after == [row for row in before if row[1] != 200]
    ((source_file, line, reason),) = query(
        warehouse, "select source_file, source_row, reason from raw.quarantine"
    )
    assert (source_file, line) == (str(path), 200) and reason.startswith("UNTERMINATED QUOTE")
    metadata = instance.get_latest_materialization_event(
        TRANSACTIONS
    ).asset_materialization.metadata
    assert metadata["rows_rejected"].value == 1
    assert metadata["rows_loaded"].value == len(before) - 1
