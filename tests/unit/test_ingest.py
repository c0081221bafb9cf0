"""Loading landing files under the contract, on real DuckDB files (no Dagster)."""

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_platform.raw.contract import load_contracts
from data_platform.raw.ingest import load_file
from data_platform.raw.landing import LandingFileError, find_landing_files, landing_file_for
from headwater_core.config import dbt_project_dir

CONTRACTS = load_contracts(dbt_project_dir())
TXN = CONTRACTS["transactions"]
HEADER = "transaction_id,customer_id,merchant_id,amount,currency,channel,region_code,transacted_at"


def _row(
    tid: str,
    day: str = "2025-01-02",
    amount: str = "10.00",
    channel: str = "online",
    customer: str = "c1",
    at: str | None = None,
) -> str:
    return f"{tid},{customer},m1,{amount},EUR,{channel},R01,{at or day + ' 10:00:00'}"


def _write(landing: Path, day: str, lines: list[str], header: str = HEADER) -> Path:
    path = landing / "transactions" / f"transactions_{day}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def _rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_good_file_loads_typed_rows_with_lineage(con, tmp_path):
    path = _write(tmp_path, "2025-01-02", [_row("t1"), _row("t2", amount="3.5")])
    result = load_file(con, TXN, path, "2025-01-02", "run-1")
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (2, 2, 0)
    rows = _rows(
        con,
        "select transaction_id, amount, _source_row, _partition_date::varchar, "
        "_source_file from raw.transactions order by 1",
    )
    assert [r[:4] for r in rows] == [
        ("t1", pytest.approx(10), 2, "2025-01-02"),
        ("t2", pytest.approx(3.5), 3, "2025-01-02"),
    ]
    assert rows[0][4] == str(path)
    assert _rows(con, "select count(*) from raw.quarantine") == [(0,)]


def test_bad_rows_are_quarantined_with_file_row_column_and_reason(con, tmp_path):
    path = _write(
        tmp_path,
        "2025-01-02",
        [
            _row("t1"),  # line 2: good
            _row("t2", customer=""),  # line 3: null key column
            _row("t3", amount='"12,50€"'),  # line 4: not a decimal
            _row("t4", channel="teleport"),  # line 5: not an accepted value
            _row("t1"),  # line 6: duplicate of line 2
            _row("t6", day="2025-01-03"),  # line 7: outside the partition
            "t7,c1",  # line 8: too few fields
            _row("t8"),  # line 9: good
        ],
    )
    result = load_file(con, TXN, path, "2025-01-02", "run-1")
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (8, 2, 6)
    assert _rows(con, "select transaction_id from raw.transactions order by 1") == [
        ("t1",),
        ("t8",),
    ]
    quarantined = _rows(
        con,
        "select source_row, column_name, reason, value, source_file "
        "from raw.quarantine order by source_row",
    )
    assert {r[4] for r in quarantined} == {str(path)}
    by_row = {r[0]: r[1:4] for r in quarantined}
    assert by_row[3] == ("customer_id", "not_null: null in required column", None)
    assert by_row[4] == ("amount", "not a valid decimal(12, 2)", "12,50€")
    assert by_row[5][0] == "channel" and by_row[5][2] == "teleport"
    assert by_row[6] == ("transaction_id", "unique: duplicate of row 2 in this file", "t1")
    assert by_row[7][:2] == ("transacted_at", "outside partition 2025-01-02")
    assert by_row[8][1].startswith("MISSING COLUMNS")
    # the offending record is kept whole, so it can be fixed and re-delivered
    (record,) = _rows(con, "select record from raw.quarantine where source_row = 4")[0]
    assert '"amount":"12,50€"' in record


def test_reloading_a_partition_replaces_exactly_it(con, tmp_path):
    day2 = _write(tmp_path, "2025-01-02", [_row("a1"), _row("a2"), _row("bad", amount="x")])
    day3 = _write(tmp_path, "2025-01-03", [_row("b1", day="2025-01-03")])
    load_file(con, TXN, day2, "2025-01-02")
    load_file(con, TXN, day3, "2025-01-03")
    before = _rows(con, "select * exclude (_loaded_at) from raw.transactions order by 1")
    load_file(con, TXN, day2, "2025-01-02")
    load_file(con, TXN, day2, "2025-01-02")
    assert _rows(con, "select * exclude (_loaded_at) from raw.transactions order by 1") == before
    assert _rows(con, "select count(*) from raw.quarantine") == [(1,)]
    # a corrected re-delivery replaces the partition and clears its quarantine
    _write(tmp_path, "2025-01-02", [_row("a1")])
    load_file(con, TXN, day2, "2025-01-02")
    assert _rows(con, "select transaction_id from raw.transactions order by 1") == [
        ("a1",),
        ("b1",),
    ]
    assert _rows(con, "select count(*) from raw.quarantine") == [(0,)]


def test_a_key_already_loaded_for_another_day_is_a_duplicate(con, tmp_path):
    load_file(con, TXN, _write(tmp_path, "2025-01-02", [_row("t1")]), "2025-01-02")
    day3 = _write(
        tmp_path, "2025-01-03", [_row("t1", day="2025-01-03"), _row("t2", day="2025-01-03")]
    )
    result = load_file(con, TXN, day3, "2025-01-03")
    assert result.rows_rejected == 1
    (reason,) = _rows(con, "select reason from raw.quarantine where partition_key = '2025-01-03'")[
        0
    ]
    assert reason.startswith("unique: duplicate of a row already loaded from")
    assert "2025-01-02" in reason


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "file is empty (0 bytes)"),
        (HEADER + "\n", "has a header but no rows"),
        ("transaction_id,customer,amount\nt1,c1,3\n", "wrong columns for raw.transactions"),
    ],
    ids=["zero-bytes", "header-only", "wrong-columns"],
)
def test_a_bad_file_fails_naming_it_and_leaves_loaded_data_untouched(
    con, tmp_path, content, message
):
    load_file(con, TXN, _write(tmp_path, "2025-01-02", [_row("t1")]), "2025-01-02")
    before = _rows(con, "select * from raw.transactions")
    path = tmp_path / "transactions" / "transactions_2025-01-02.csv"
    path.write_text(content)
    with pytest.raises(LandingFileError) as error:
        load_file(con, TXN, path, "2025-01-02")
    assert str(path) in str(error.value) and message in str(error.value)
    assert _rows(con, "select * from raw.transactions") == before
    # the fault is queryable next to row-level rejections
    assert _rows(con, "select reason from raw.quarantine where source_row is null") == [
        (str(error.value),)
    ]


def test_wrong_columns_message_lists_missing_and_unexpected(con, tmp_path):
    path = _write(
        tmp_path,
        "2025-01-02",
        ["t1,c1,m1,1,EUR,online,R01,x"],
        header=HEADER.replace("region_code", "region"),
    )
    with pytest.raises(
        LandingFileError,
        match=r"missing columns \['region_code'\]; "
        r"unexpected columns \['region'\]",
    ):
        load_file(con, TXN, path, "2025-01-02")


def test_unreadable_parquet_is_named(con, tmp_path):
    path = tmp_path / "transactions" / "transactions_2025-01-02.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(LandingFileError, match="unreadable Parquet file"):
        load_file(con, TXN, path, "2025-01-02")


def test_parquet_rows_are_checked_like_csv(con, tmp_path):
    table = pa.table(
        {
            "transaction_id": ["p1", "p2"],
            "customer_id": ["c1", None],
            "merchant_id": ["m1", "m1"],
            "amount": [1.5, 2.0],
            "currency": ["EUR", "EUR"],
            "channel": ["online", "online"],
            "region_code": ["R01", "R01"],
            "transacted_at": pa.array([1735812000, 1735812060], pa.timestamp("s")),  # 2025-01-02
        }
    )
    path = tmp_path / "transactions" / "transactions_2025-01-02.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    result = load_file(con, TXN, path, "2025-01-02")
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    assert _rows(con, "select source_row, column_name from raw.quarantine") == [(2, "customer_id")]


def test_an_empty_chargebacks_day_is_valid(con, tmp_path):
    contract = CONTRACTS["chargebacks"]
    path = tmp_path / "chargebacks" / "chargebacks_2025-01-02.csv"
    path.parent.mkdir(parents=True)
    path.write_text(",".join(contract.column_names) + "\n")
    result = load_file(con, contract, path, "2025-01-02")
    assert (result.rows_read, result.rows_loaded) == (0, 0)


def test_finding_landing_files(tmp_path):
    _write(tmp_path, "2025-01-02", [_row("t1")])
    (tmp_path / "transactions" / ".transactions_2025-01-03.csv.tmp").write_text("partial")
    assert list(find_landing_files(TXN, tmp_path)) == ["2025-01-02"]
    with pytest.raises(
        LandingFileError, match="no landing file for transactions partition 2025-01-05"
    ):
        landing_file_for(TXN, tmp_path, "2025-01-05")
    (tmp_path / "transactions" / "transactions_2025-01-02.parquet").write_bytes(b"x")
    with pytest.raises(LandingFileError, match="a second file for transactions on 2025-01-02"):
        find_landing_files(TXN, tmp_path)


# --- rows a parse loses, offsets, decimals that do not fit ------------------------------------


def _with_stray_quote(path: Path, line_no: int, quoted: bool) -> None:
    """Rewrite a real landing CSV with one unterminated quote on `line_no` (header = line 1):
    opening its last field. `quoted=False` writes it first without any quotes, as many tools
    export CSV."""
    lines = path.read_text().splitlines()
    if not quoted:
        lines = [line.replace('"', "") for line in lines]
    fields = lines[line_no - 1].split(",")
    fields[-1] = '"' + fields[-1]
    lines[line_no - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("quoted", [False, True], ids=["unquoted-export", "quoted-export"])
def test_a_stray_quote_quarantines_its_line_and_the_lines_it_swallowed_load(con, landing, quoted):
    """Issue 13 case 1 read exactly: the quote on line 200 once swallowed the 701 lines after it.
    Now line 200 alone is quarantined, and every other line of the file loads."""
    path = landing / "transactions" / "transactions_2025-01-02.csv"
    data_lines = len(path.read_text().splitlines()) - 1
    assert data_lines > 400
    load_file(con, TXN, path, "2025-01-02", "run-1")
    before = _rows(con, "select transaction_id, _source_row from raw.transactions order by 2")
    assert len(before) == data_lines

    _with_stray_quote(path, 200, quoted)
    result = load_file(con, TXN, path, "2025-01-02", "run-2")
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (
        data_lines,
        data_lines - 1,
        1,
    )
    after = _rows(con, "select transaction_id, _source_row from raw.transactions order by 2")
    assert after == [row for row in before if row[1] != 200]
    ((line, reason, run_id),) = _rows(con, "select source_row, reason, run_id from raw.quarantine")
    assert (line, run_id) == (200, "run-2") and "QUOTE" in reason


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_every_real_csv_reconciles_with_its_lines(con, landing, ending):
    """The reconciliation counts what the reader counts: CRLF endings and a blank last line
    are not lost rows."""
    files = sorted(landing.rglob("*.csv"))
    assert {p.parent.name for p in files} == {"transactions", "chargebacks", "merchants"}
    for path in files:
        path.write_text(ending.join(path.read_text().splitlines()) + ending + ending)
        contract = CONTRACTS[path.parent.name]
        result = load_file(con, contract, path, path.stem.split("_")[-1])
        assert result.rows_read == len(path.read_text().splitlines()) - 2, path


def test_a_timestamp_with_an_offset_is_converted_to_utc(con, tmp_path):
    path = _write(
        tmp_path,
        "2025-01-03",
        [
            _row("t1", at="2025-01-03T23:30:00-02:00"),  # line 2: 01:30 UTC on the 4th
            _row("t2", at="2025-01-03T12:00:00+02:00"),  # line 3: 10:00 UTC
            _row("t3", at="2025-01-03 12:00:00"),  # line 4: naive, taken as UTC
            _row("t4", at="2025-01-03T01:00:00+02:00"),  # line 5: 23:00 UTC on the 2nd
            _row("t5", at="2025-01-03T10:00:00Z"),  # line 6
        ],
    )
    # the session's time zone plays no part: naive stays naive, offsets go to UTC
    con.execute("set TimeZone = 'Asia/Tokyo'")
    result = load_file(con, TXN, path, "2025-01-03")
    assert (result.rows_loaded, result.rows_rejected) == (3, 2)
    assert _rows(
        con, "select transaction_id, transacted_at::varchar from raw.transactions order by 1"
    ) == [
        ("t2", "2025-01-03 10:00:00"),
        ("t3", "2025-01-03 12:00:00"),
        ("t5", "2025-01-03 10:00:00"),
    ]
    assert _rows(
        con, "select source_row, column_name, reason, value from raw.quarantine order by 1"
    ) == [
        (2, "transacted_at", "outside partition 2025-01-03", "2025-01-03T23:30:00-02:00"),
        (5, "transacted_at", "outside partition 2025-01-03", "2025-01-03T01:00:00+02:00"),
    ]
    assert _rows(con, "select current_setting('TimeZone')") == [("Asia/Tokyo",)]


def test_an_amount_finer_than_the_declared_scale_is_quarantined_not_rounded(con, tmp_path):
    path = _write(
        tmp_path,
        "2025-01-02",
        [
            _row("t1", amount="0.004"),  # line 2
            _row("t2", amount="12.345"),  # line 3
            _row("t3", amount="12.340"),  # line 4: trailing zeros are fine
            _row("t4", amount="7"),  # line 5
            _row("t5", amount="3.1"),  # line 6
            _row("t6", amount="1.2345e1"),  # line 7: 12.345 again
            _row("t7", amount="0.0000000000000000001"),  # line 8: finer than any wide decimal
        ],
    )
    result = load_file(con, TXN, path, "2025-01-02")
    assert (result.rows_loaded, result.rows_rejected) == (3, 4)
    assert _rows(
        con, "select transaction_id, amount::varchar from raw.transactions order by 1"
    ) == [("t3", "12.34"), ("t4", "7.00"), ("t5", "3.10")]
    reason = "more decimal places than decimal(12, 2)"
    assert _rows(
        con, "select source_row, column_name, reason, value from raw.quarantine order by 1"
    ) == [
        (2, "amount", reason, "0.004"),
        (3, "amount", reason, "12.345"),
        (7, "amount", reason, "1.2345e1"),
        (8, "amount", reason, "0.0000000000000000001"),
    ]
