"""File dialects at ingestion (issue 14, item 3): line endings, byte-order marks, encodings, gzip,
delimiters, no header, quoted fields; and malformed lines, each quarantined with its line number
while the rest of the file, and the other days, load. Real DuckDB files, real hour.csv lines."""

import dataclasses
import gzip
from pathlib import Path

import duckdb
import pytest

from data_platform.raw.contract import FileDialect, load_contracts
from data_platform.raw.ingest import load_file
from data_platform.raw.landing import LandingFileError
from headwater_core.config import dbt_project_dir
from tests.bike_sharing import bike_contract, hour_lines

DAY1, DAY2 = "2011-01-01", "2011-01-02"
TXN = load_contracts(dbt_project_dir())["transactions"]
TXN_HEADER = (
    "transaction_id,customer_id,merchant_id,amount,currency,channel,region_code,transacted_at"
)


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def _rows(con, sql: str, *params) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def _land(folder: Path, day: str, content: bytes, name: str = "rentals", suffix=".csv") -> Path:
    path = folder / name / f"{name}_{day}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _day_file(day: str, ending: str = "\n") -> tuple[str, list[str]]:
    header, lines = hour_lines(day)
    return ending.join([header, *lines]) + ending, lines


@pytest.fixture
def bike(tmp_path, con):
    """The bike contract, with 2011-01-01 already loaded from its real lines (LF)."""
    contract = bike_contract(tmp_path / "project")
    text, lines = _day_file(DAY1)
    load_file(con, contract, _land(tmp_path, DAY1, text.encode()), DAY1)
    return contract, len(lines)


@pytest.fixture
def txn(con, tmp_path):
    """raw.transactions with 2025-01-01 already loaded (two rows, default dialect)."""
    day1 = _land(
        tmp_path, "2025-01-01", _txn_file([_txn("d1"), _txn("d2")], "2025-01-01"), "transactions"
    )
    load_file(con, TXN, day1, "2025-01-01")


def _txn_day1_landed(con) -> None:
    assert _rows(
        con, "select transaction_id from raw.transactions where _partition_date = '2025-01-01'"
    ) == [("d1",), ("d2",)]


DAY2_TXN = "from raw.transactions where _partition_date = '2025-01-02'"


def _quarantine(con, day: str) -> list[tuple]:
    return _rows(
        con,
        "select source_row, column_name, reason from raw.quarantine "
        "where partition_key = ? order by source_row",
        day,
    )


def _day1_landed(con, rows: int) -> None:
    assert _rows(con, "select count(*) from raw.rentals where _partition_date = ?", DAY1) == [
        (rows,)
    ]


def test_a_crlf_hour_csv_loads_every_line_and_quarantines_a_short_one(con, tmp_path, bike):
    """Real hour.csv lines with CRLF endings (the delivery once refused whole with "The CSV
    Parser state machine reached an invalid state"), with a truncated line on line 5."""
    contract, day1_rows = bike
    header, lines = hour_lines(DAY2)
    lines[3] = ",".join(lines[3].split(",")[:9])  # line 5: cut after `workingday`
    path = _land(tmp_path, DAY2, ("\r\n".join([header, *lines]) + "\r\n").encode())
    result = load_file(con, contract, path, DAY2)
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (
        len(lines),
        len(lines) - 1,
        1,
    )
    assert _quarantine(con, DAY2) == [
        (5, "weathersit", "MISSING COLUMNS: expected 17 fields, found 9")
    ]
    # each loaded row keeps the line it came from, CR stripped from the last field
    loaded = _rows(
        con,
        "select _source_row, instant, cnt from raw.rentals where _partition_date = ? order by 1",
        DAY2,
    )
    expected = [
        (n, int(line.split(",")[0]), int(line.split(",")[-1]))
        for n, line in enumerate(lines, start=2)
        if n != 5
    ]
    assert loaded == expected
    _day1_landed(con, day1_rows)


def test_mixed_line_endings_and_blank_lines_keep_every_line_number(con, tmp_path, bike):
    contract, day1_rows = bike
    header, lines = hour_lines(DAY2)
    endings = ["\n", "\r\n", "\r"]
    text = header + "\r\n"
    for i, line in enumerate(lines):
        text += line + endings[i % 3]
    text += "\n"  # a blank last line is no data line
    result = load_file(con, contract, _land(tmp_path, DAY2, text.encode()), DAY2)
    assert (result.rows_read, result.rows_loaded) == (len(lines), len(lines))
    assert _rows(
        con,
        "select min(_source_row), max(_source_row) from raw.rentals where _partition_date = ?",
        DAY2,
    ) == [(2, len(lines) + 1)]
    assert _quarantine(con, DAY2) == []
    _day1_landed(con, day1_rows)


def test_a_utf8_bom_is_read_and_an_undecodable_line_is_quarantined(con, tmp_path):
    """UTF-8 with a byte-order mark (Excel's "CSV UTF-8") loads; a line in latin-1 inside it is
    quarantined with its number, naming the encoding to declare."""
    lines = [_txn("t1"), _txn("t2", region="Zürich"), _txn("t3")]
    day1 = _land(tmp_path, "2025-01-01", _txn_file(lines, "2025-01-01"), "transactions")
    load_file(con, TXN, day1, "2025-01-01")
    lines = [line.replace("t", "u", 1) for line in lines]
    content = b"\xef\xbb\xbf" + _txn_file(lines, "2025-01-02")
    content = content.replace("Zürich".encode(), "Zürich".encode("latin-1"))
    result = load_file(
        con, TXN, _land(tmp_path, "2025-01-02", content, "transactions"), "2025-01-02"
    )
    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    ((line, column, reason),) = _quarantine(con, "2025-01-02")
    assert line == 3 and column is None
    assert reason.startswith("INVALID ENCODING") and "meta.headwater.file.encoding" in reason
    (record,) = _rows(con, "select record from raw.quarantine where source_row = 3")[0]
    assert "Z\\xfcrich" in record  # the bytes as they were
    assert _rows(con, "select region_code from raw.transactions where transaction_id = 't2'") == [
        ("Zürich",)
    ]  # from the first, UTF-8 day


def test_a_declared_latin1_file_loads_its_text_as_written(con, tmp_path, txn):
    contract = dataclasses.replace(TXN, file=FileDialect(encoding="latin-1"))
    lines = [_txn("t1", region="Zürich"), _txn("t2", region="Ørsted"), "t3,c1"]
    content = _txn_file(lines, "2025-01-02").decode().encode("latin-1")
    path = _land(tmp_path, "2025-01-02", content, "transactions")
    result = load_file(con, contract, path, "2025-01-02")
    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    assert _rows(con, f"select region_code {DAY2_TXN} order by 1") == [("Zürich",), ("Ørsted",)]
    assert _quarantine(con, "2025-01-02") == [
        (4, "merchant_id", "MISSING COLUMNS: expected 8 fields, found 2")
    ]
    _txn_day1_landed(con)


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv"], ids=["gz-suffix", "magic-bytes-only"])
def test_a_gzip_file_loads_by_its_magic_bytes(con, tmp_path, bike, suffix):
    contract, day1_rows = bike
    text, lines = _day_file(DAY2, "\r\n")
    text = text.replace(lines[6], lines[6] + ",extra")  # line 8: one field too many
    path = _land(tmp_path, DAY2, gzip.compress(text.encode()), suffix=suffix)
    result = load_file(con, contract, path, DAY2)
    assert (result.rows_loaded, result.rows_rejected) == (len(lines) - 1, 1)
    assert _quarantine(con, DAY2) == [(8, None, "TOO MANY COLUMNS: expected 17 fields, found 18")]
    _day1_landed(con, day1_rows)


def test_a_truncated_gzip_file_fails_alone_naming_it(con, tmp_path, bike):
    contract, day1_rows = bike
    text, _ = _day_file(DAY2)
    path = _land(tmp_path, DAY2, gzip.compress(text.encode())[:-200], suffix=".csv.gz")
    with pytest.raises(LandingFileError, match="not a readable gzip file") as error:
        load_file(con, contract, path, DAY2)
    assert str(path) in str(error.value)
    assert _rows(con, "select count(*) from raw.rentals where _partition_date = ?", DAY2) == [(0,)]
    _day1_landed(con, day1_rows)


def test_a_semicolon_file_is_read_by_its_header(con, tmp_path, bike):
    """The delimiter is detected when exactly one candidate splits the header into the declared
    columns; a line split some other way is quarantined with its number."""
    contract, day1_rows = bike
    text, lines = _day_file(DAY2)
    text = text.replace(",", ";").replace(lines[1].replace(",", ";"), lines[1])  # line 3
    result = load_file(con, contract, _land(tmp_path, DAY2, text.encode()), DAY2)
    assert (result.rows_loaded, result.rows_rejected) == (len(lines) - 1, 1)
    assert _quarantine(con, DAY2) == [(3, "dteday", "MISSING COLUMNS: expected 17 fields, found 1")]
    _day1_landed(con, day1_rows)


def test_a_file_without_header_is_read_in_the_contract_order(con, tmp_path, bike):
    _, day1_rows = bike
    contract = bike_contract(tmp_path / "p", file={"header": False, "delimiter": "|"})
    _, lines = hour_lines(DAY2)
    lines = [line.replace(",", "|") for line in lines]
    lines[2] += "|"  # line 3
    text = "\n".join(lines) + "\n"
    result = load_file(con, contract, _land(tmp_path, DAY2, text.encode()), DAY2)
    assert (result.rows_loaded, result.rows_rejected) == (len(lines) - 1, 1)
    assert _quarantine(con, DAY2) == [(3, None, "TOO MANY COLUMNS: expected 17 fields, found 18")]
    assert _rows(
        con,
        "select min(_source_row), min(instant) from raw.rentals where _partition_date = ?",
        DAY2,
    ) == [(1, int(lines[0].split("|")[0]))]
    _day1_landed(con, day1_rows)


def test_quoted_fields_hold_delimiters_quotes_and_line_breaks(con, tmp_path, txn):
    """A record may span lines inside a quoted field: it keeps the line it starts on, and the
    next record keeps its own."""
    lines = [
        _txn("t1", merchant='"m,1"'),  # line 2
        _txn("t2", merchant='"m ""quoted""\nsecond line"'),  # lines 3-4
        _txn("t3"),  # line 5
        _txn("t4", merchant='"m4" x'),  # line 6: text after a closing quote
        _txn("t5"),  # line 7
    ]
    path = _land(tmp_path, "2025-01-02", _txn_file(lines, "2025-01-02"), "transactions")
    result = load_file(con, TXN, path, "2025-01-02")
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (5, 4, 1)
    assert _rows(con, f"select _source_row, merchant_id {DAY2_TXN} order by 1") == [
        (2, "m,1"),
        (3, 'm "quoted"\nsecond line'),
        (5, "m1"),
        (7, "m1"),
    ]
    ((line, _, reason),) = _quarantine(con, "2025-01-02")
    assert line == 6 and reason.startswith("INVALID QUOTING")
    _txn_day1_landed(con)


@pytest.mark.parametrize("line_no", [3, 8, 24])
def test_an_unterminated_quote_quarantines_its_line_and_the_rest_loads(
    con, tmp_path, bike, line_no
):
    """Real hour.csv lines (unquoted, as delivered) with a quote opened and never closed: the
    reader runs to the end of the file, so the quote's line alone is quarantined and the lines
    it swallowed are read again; the last line is the case with nothing left to swallow."""
    contract, day1_rows = bike
    header, lines = hour_lines(DAY2)
    assert len(lines) == 23  # 2011-01-02 lacks an hour: line 24 is its last
    fields = lines[line_no - 2].split(",")
    fields[10] = '"' + fields[10]
    lines[line_no - 2] = ",".join(fields)
    path = _land(tmp_path, DAY2, ("\r\n".join([header, *lines]) + "\r\n").encode())
    result = load_file(con, contract, path, DAY2)
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (23, 22, 1)
    ((line, _, reason),) = _quarantine(con, DAY2)
    assert line == line_no and reason.startswith("UNTERMINATED QUOTE")
    assert _rows(
        con,
        "select count(*), sum(_source_row) from raw.rentals where _partition_date = ?",
        DAY2,
    ) == [(22, sum(range(2, 24 + 1)) - line_no)]
    _day1_landed(con, day1_rows)


def test_declared_null_values_and_backslash_escapes(con, tmp_path, txn):
    contract = dataclasses.replace(
        TXN, file=FileDialect(escape="\\", null_values=("", "NA", "NULL"))
    )
    lines = [
        _txn("t1", merchant='"m \\"quoted\\""'),  # line 2
        _txn("t2", customer="NA"),  # line 3: null in a required column
        _txn("t3", merchant="NULL"),  # line 4
    ]
    path = _land(tmp_path, "2025-01-02", _txn_file(lines, "2025-01-02"), "transactions")
    result = load_file(con, contract, path, "2025-01-02")
    assert (result.rows_loaded, result.rows_rejected) == (1, 2)
    assert _rows(con, f"select merchant_id {DAY2_TXN}") == [('m "quoted"',)]
    assert _quarantine(con, "2025-01-02") == [
        (3, "customer_id", "not_null: null in required column"),
        (4, "merchant_id", "not_null: null in required column"),
    ]
    _txn_day1_landed(con)


# --- transactions lines ----------------------------------------------------------------------


def _txn(tid: str, customer="c1", merchant="m1", region="R01") -> str:
    return f"{tid},{customer},{merchant},10.00,EUR,online,{region},DAY 10:00:00"


def _txn_file(lines: list[str], day: str) -> bytes:
    return ("\n".join([TXN_HEADER, *lines]) + "\n").replace("DAY", day).encode()


def test_a_utf16_file_is_read_by_its_byte_order_mark(con, tmp_path, bike):
    contract, day1_rows = bike
    text, lines = _day_file(DAY2, "\r\n")
    text = text.replace(lines[2], lines[2][:-3])  # line 4: `,8,9` cut to `,` (16 fields)
    path = _land(tmp_path, DAY2, text.encode("utf-16"))  # with its byte-order mark
    result = load_file(con, contract, path, DAY2)
    assert (result.rows_loaded, result.rows_rejected) == (len(lines) - 1, 1)
    assert _quarantine(con, DAY2) == [(4, "cnt", "MISSING COLUMNS: expected 17 fields, found 16")]
    _day1_landed(con, day1_rows)


def test_without_a_quote_character_quotes_are_text(con, tmp_path, txn):
    contract = dataclasses.replace(TXN, file=FileDialect(quote=""))
    lines = [_txn("t1", merchant="5'11\" shop"), _txn("t2", merchant='"m2"')]
    path = _land(tmp_path, "2025-01-02", _txn_file(lines, "2025-01-02"), "transactions")
    result = load_file(con, contract, path, "2025-01-02")
    assert (result.rows_loaded, result.rows_rejected) == (2, 0)
    assert _rows(con, f"select merchant_id {DAY2_TXN} order by 1") == [
        ('"m2"',),
        ("5'11\" shop",),
    ]
    _txn_day1_landed(con)
