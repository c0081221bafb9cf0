"""Staging a landing file: its rows as text in the temp table `_staged`, before any rule runs.

Every column is staged as VARCHAR, with the file's line number (CSV: the line a record starts
on) or row number (Parquet) in `_source_row`, so a value that breaks its declared type is
reported with its row instead of failing the read. A CSV is read under the contract's dialect
(`delimited.read_records`); records that cannot be split go to `_csv_errors` with their line.
What fails the whole file (missing, empty, unreadable, wrong columns, rows lost by the parse)
raises `LandingFileError` naming it. No Dagster import here.

The rows read are reconciled with the file: every data line of a CSV is part of exactly one
record, staged or rejected (`delimited`); a Parquet file's rows must equal the count its footer
and its row groups declare.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from data_platform.raw.contract import SourceContract
from data_platform.raw.delimited import check_columns, read_records
from data_platform.raw.landing import LandingFileError
from data_platform.raw.violations import quote

# Suffixes a landing file may end with after its format's (`transactions_2025-01-02.csv.gz`).
COMPRESSION_SUFFIXES = (".gz",)


def _stage_csv(con: duckdb.DuckDBPyConnection, path: Path, contract: SourceContract) -> None:
    """`_staged` from the file's good records, `_csv_errors` from its rejected ones. The texts go
    to DuckDB as list parameters, unnested side by side (no Arrow or pandas import per run)."""
    records = read_records(path, contract)
    nulls = ", ".join(quote(v) for v in contract.file.null_values) or "null"
    staged = [
        f'case when "{c}" in ({nulls}) then null else "{c}" end as "{c}"'
        for c in contract.column_names
    ]
    _from_lists(
        con,
        "_staged",
        {**dict(zip(contract.column_names, records.values)), "_source_row": records.lines},
        ", ".join([*staged, "_source_row"]),
    )
    rejected = records.rejected
    columns = {
        "line": [r.line for r in rejected],
        "column_name": [r.column_name for r in rejected],
        "error_type": [r.error_type for r in rejected],
        "error_message": [r.message for r in rejected],
        "csv_line": [r.text for r in rejected],
    }
    _from_lists(con, "_csv_errors", columns, "*")


def _from_lists(
    con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list], select: str
) -> None:
    """The temp table `table`: `select` over the columns given as equally long Python lists."""
    unnested = ", ".join(
        f'unnest(${i}::{"bigint" if name in ("_source_row", "line") else "varchar"}[]) as "{name}"'
        for i, name in enumerate(columns, start=1)
    )
    con.execute(
        f"create or replace temp table {table} as select {select} from (select {unnested})",
        [list(values) for values in columns.values()],
    )


def _stage_parquet(con: duckdb.DuckDBPyConnection, path: Path, contract: SourceContract) -> None:
    try:
        schema = con.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as e:
        raise LandingFileError(f"{path}: unreadable Parquet file ({e})") from e
    check_columns(path, contract, [row[0] for row in schema])
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


def file_format_of(path: Path, contract: SourceContract) -> str:
    """`csv` or `parquet`: as declared (`meta.headwater.file.format`), else from the extension,
    a compression suffix left out (`.csv.gz` is CSV). Anything else is returned as it is."""
    if contract.file.format:
        return contract.file.format
    suffixes = [s for s in path.suffixes if s not in COMPRESSION_SUFFIXES]
    return suffixes[-1].lstrip(".") if suffixes else ""


def stage_file(con: duckdb.DuckDBPyConnection, path: Path, contract: SourceContract) -> int:
    """Stage a landing file as text in the temp table `_staged`; returns the rows read."""
    if not path.exists():
        raise LandingFileError(f"{path}: file does not exist")
    if path.stat().st_size == 0:
        raise LandingFileError(f"{path}: file is empty (0 bytes)")
    try:
        file_format = file_format_of(path, contract)
        if file_format == "parquet":
            _stage_parquet(con, path, contract)
        elif file_format == "csv":
            _stage_csv(con, path, contract)
        else:
            raise LandingFileError(f"{path}: unsupported file type {path.suffix!r}")
        ((staged,),) = con.execute("select count(*) from _staged").fetchall()
        ((broken,),) = con.execute("select count(*) from _csv_errors").fetchall()
        if file_format == "parquet":
            _reconcile_parquet(con, path, staged)
    except duckdb.Error as e:
        raise LandingFileError(f"{path}: could not be read ({e})") from e
    if staged + broken == 0 and not contract.allow_empty:
        raise LandingFileError(
            f"{path}: has a header but no rows; an empty {contract.table} delivery is not valid"
        )
    return staged + broken
