"""Staging a landing file: its rows as text in the temp table `_staged`, before any rule runs.

Every column is staged as VARCHAR, with the file's line number (CSV) or row number (Parquet) in
`_source_row`, so a value that breaks its declared type is reported with its row instead of
failing the read. Lines DuckDB cannot split go to `_csv_errors`. What fails the whole file
(missing, empty, unreadable, wrong columns, rows lost by the parse) raises `LandingFileError`
naming it. No Dagster import here.

The rows read are reconciled with the file: a CSV record is one line, so the rows staged plus
the lines rejected must equal the file's data lines (an unterminated quote makes the reader run
past its line and swallow the lines after it); a Parquet file's rows must equal the count its
footer and its row groups declare.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

from data_platform.raw.contract import SourceContract
from data_platform.raw.landing import LandingFileError


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), None)
    if not header or not any(h.strip() for h in header):
        raise LandingFileError(f"{path}: file is empty (no header line)")
    return [h.strip() for h in header]


def _check_columns(path: Path, contract: SourceContract, found: list[str]) -> None:
    missing = [c for c in contract.column_names if c not in found]
    unexpected = [c for c in found if c not in contract.column_names]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if unexpected:
            parts.append(f"unexpected columns {unexpected}")
        raise LandingFileError(
            f"{path}: wrong columns for {contract.qualified_name}: {'; '.join(parts)} "
            f"(expected {list(contract.column_names)})"
        )


def _stage_csv(con: duckdb.DuckDBPyConnection, path: Path, contract: SourceContract) -> None:
    header = _csv_header(path)
    _check_columns(path, contract, header)
    columns = ", ".join(f"'{name}': 'VARCHAR'" for name in header)
    # Rows with too few or too many fields go to DuckDB's reject table with their line number
    # instead of failing the whole file.
    con.execute(
        f"""
        create or replace temp table _read as
        select *, row_number() over () as _k
        from read_csv(?, header = true, auto_detect = false, delim = ',', quote = '"',
                      escape = '"', columns = {{{columns}}}, store_rejects = true,
                      rejects_table = '_csv_rejects', rejects_scan = '_csv_scans')
        """,
        [str(path)],
    )
    con.execute(
        """
        create or replace temp table _csv_errors as
        -- DuckDB reports a short line once per missing field: keep the first per line.
        select line,
               min_by(column_name, column_idx) as column_name,
               min_by(error_type, column_idx) as error_type,
               min_by(error_message, column_idx) as error_message,
               any_value(csv_line) as csv_line
        from _csv_rejects
        group by line
        """
    )
    # A staged row's line number: the k-th line (after the header) that DuckDB did not reject.
    # This assumes one record per line, which holds for the exports headwater reads.
    con.execute(
        """
        create or replace temp table _staged as
        with lines as (
            select line, row_number() over (order by line) as k
            from range(2, 2 + (select count(*) from _read) + (select count(*) from _csv_errors))
                as t(line)
            where line not in (select line from _csv_errors)
        )
        select _read.* exclude (_k), lines.line as _source_row
        from _read join lines on lines.k = _read._k
        """
    )


def _stage_parquet(con: duckdb.DuckDBPyConnection, path: Path, contract: SourceContract) -> None:
    try:
        schema = con.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as e:
        raise LandingFileError(f"{path}: unreadable Parquet file ({e})") from e
    _check_columns(path, contract, [row[0] for row in schema])
    as_text = ", ".join(f'cast("{c}" as varchar) as "{c}"' for c in contract.column_names)
    con.execute(
        f"""
        create or replace temp table _staged as
        select {as_text}, file_row_number + 1 as _source_row
        from read_parquet(?, file_row_number = true)
        """,
        [str(path)],
    )
    con.execute(
        "create or replace temp table _csv_errors as select null::bigint as line, "
        "null::varchar as column_name, null::varchar as error_type, "
        "null::varchar as error_message, null::varchar as csv_line where false"
    )


def _data_lines(path: Path) -> int:
    """The CSV's lines after the header, not counting empty ones (the reader skips them)."""
    with path.open("rb") as f:
        next(f, None)
        return sum(1 for line in f if line.strip(b"\r\n"))


def _first_unbalanced_quote(path: Path) -> int | None:
    """The number of the first line with an odd number of quotes: a record on one line opens
    and closes each quoted field, and writes a quote inside one as two."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if line.count(b'"') % 2:
                return number
    return None


def _reconcile_csv(path: Path, records: int) -> None:
    lines = _data_lines(path)
    if records == lines:
        return
    where = _first_unbalanced_quote(path)
    cause = (
        f"line {where} opens a quote it does not close, so the CSV reader ran past the end of "
        "the line"
        if where is not None
        else "the CSV reader did not read one record per line"
    )
    raise LandingFileError(
        f"{path}: {cause}: {records} records read from {lines} data lines; "
        "nothing of the file was loaded (a record must be one line)"
    )


def _reconcile_parquet(con: duckdb.DuckDBPyConnection, path: Path, rows: int) -> None:
    (in_footer,) = con.execute(
        "select num_rows from parquet_file_metadata(?)", [str(path)]
    ).fetchone()
    (in_row_groups,) = con.execute(
        "select coalesce(sum(row_group_num_rows), 0) from "
        "(select distinct row_group_id, row_group_num_rows from parquet_metadata(?))",
        [str(path)],
    ).fetchone()
    if not rows == in_footer == in_row_groups:
        raise LandingFileError(
            f"{path}: {rows} rows read but the file declares {in_footer} "
            f"({in_row_groups} in its row groups); nothing of the file was loaded"
        )


def stage_file(con: duckdb.DuckDBPyConnection, path: Path, contract: SourceContract) -> int:
    """Stage a landing file as text in the temp table `_staged`; returns the rows read."""
    if not path.exists():
        raise LandingFileError(f"{path}: file does not exist")
    if path.stat().st_size == 0:
        raise LandingFileError(f"{path}: file is empty (0 bytes)")
    try:
        if path.suffix == ".parquet":
            _stage_parquet(con, path, contract)
        elif path.suffix == ".csv":
            _stage_csv(con, path, contract)
        else:
            raise LandingFileError(f"{path}: unsupported file type {path.suffix!r}")
        (staged,) = con.execute("select count(*) from _staged").fetchone()
        (broken,) = con.execute("select count(*) from _csv_errors").fetchone()
        if path.suffix == ".csv":
            _reconcile_csv(path, staged + broken)
        else:
            _reconcile_parquet(con, path, staged)
    except duckdb.Error as e:
        raise LandingFileError(f"{path}: could not be read ({e})") from e
    if staged + broken == 0 and not contract.allow_empty:
        raise LandingFileError(
            f"{path}: has a header but no rows; an empty {contract.table} delivery is not valid"
        )
    return staged + broken
