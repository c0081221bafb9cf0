"""Loading landing files into the `raw` schema under the contract.

One file loads in one DuckDB transaction:
1. the file is staged as text (every column VARCHAR, with its line or row number), after checks
   that fail the whole file with a message naming it: unreadable, empty, wrong columns;
2. every contract rule is checked row by row (`violations_sql`), giving one violation per broken
   rule with the row, column, reason and offending value;
3. the partition's rows are deleted and the good rows inserted, cast to their declared types,
   and the partition's quarantine rows are replaced by the new violations.

So a re-load replaces exactly its partition, a bad row never reaches `raw`, and a bad file
changes nothing that was loaded before. No Dagster import here.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from data_platform.raw.contract import LINEAGE_COLUMNS, SourceContract

QUARANTINE_TABLE = "raw.quarantine"

_QUARANTINE_COLUMNS = {
    "source_table": "varchar",
    "partition_key": "varchar",
    "source_file": "varchar",
    "source_row": "bigint",
    "column_name": "varchar",
    "reason": "varchar",
    "value": "varchar",
    "record": "varchar",
    "run_id": "varchar",
    "quarantined_at": "timestamp",
}

_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
_FORMATS = (".csv", ".parquet")


class LandingFileError(Exception):
    """A landing file that cannot be loaded at all. The message names the file and the fault."""


@dataclass(frozen=True)
class LoadResult:
    """What one file's load did to its partition."""

    table: str
    partition_key: str
    source_file: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    violations_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_share(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0


# --- finding files ----------------------------------------------------------------------------


def _landing_glob(contract: SourceContract) -> tuple[str, str]:
    folder, _, name = contract.landing_pattern.rpartition("/")
    return folder, name.replace("{date}", "*")


def find_landing_files(contract: SourceContract, landing_dir: Path) -> dict[str, Path]:
    """The table's landing files by the date in their name (YYYY-MM-DD)."""
    folder, pattern = _landing_glob(contract)
    prefix = pattern.split("*", 1)[0]
    found: dict[str, Path] = {}
    for path in sorted((landing_dir / folder).glob(pattern)):
        # Skip temp files of a writer still at work, and anything that is not data.
        if path.name.startswith(".") or path.suffix not in _FORMATS:
            continue
        match = _DATE_IN_NAME.search(path.name[len(prefix) :])
        if not match:
            continue
        key = match.group(1)
        if key in found:
            raise LandingFileError(
                f"{path}: a second file for {contract.table} on {key} (also {found[key].name}); "
                "remove one of them"
            )
        found[key] = path
    return found


def landing_file_for(contract: SourceContract, landing_dir: Path, partition_key: str) -> Path:
    """The one landing file of a daily partition, or a clear error."""
    files = find_landing_files(contract, landing_dir)
    if partition_key not in files:
        expected = landing_dir / contract.landing_pattern.replace("{date}", partition_key)
        raise LandingFileError(
            f"no landing file for {contract.table} partition {partition_key}: expected "
            f"{expected.with_suffix('')}.csv or .parquet"
        )
    return files[partition_key]


def newest_snapshot_file(contract: SourceContract, landing_dir: Path) -> tuple[str, Path]:
    """The newest snapshot file of a snapshot table and its date."""
    files = find_landing_files(contract, landing_dir)
    if not files:
        folder, pattern = _landing_glob(contract)
        raise LandingFileError(f"no {contract.table} snapshot in {landing_dir / folder}/{pattern}")
    key = max(files)
    return key, files[key]


# --- tables -----------------------------------------------------------------------------------


def _table_columns(contract: SourceContract) -> dict[str, str]:
    return {**{c.name: c.data_type for c in contract.columns}, **LINEAGE_COLUMNS}


def ensure_raw_table(con: duckdb.DuckDBPyConnection, contract: SourceContract) -> None:
    """Create the raw table and the quarantine if missing; add columns the contract gained."""
    con.execute(f"create schema if not exists {contract.schema}")
    for table, columns in (
        (contract.qualified_name, _table_columns(contract)),
        (QUARANTINE_TABLE, _QUARANTINE_COLUMNS),
    ):
        ddl = ", ".join(f'"{name}" {dtype}' for name, dtype in columns.items())
        con.execute(f"create table if not exists {table} ({ddl})")
        schema, name = table.split(".")
        existing = {
            row[0]
            for row in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [schema, name],
            ).fetchall()
        }
        for column, dtype in columns.items():
            if column not in existing:
                con.execute(f'alter table {table} add column "{column}" {dtype}')


def ensure_raw_tables(con: duckdb.DuckDBPyConnection, contracts: Iterable[SourceContract]) -> None:
    """Create every declared raw table, empty if nothing has landed yet, so that the staging
    views over them can always be built."""
    for contract in contracts:
        ensure_raw_table(con, contract)


# --- staging a file ---------------------------------------------------------------------------


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
    except duckdb.Error as e:
        raise LandingFileError(f"{path}: could not be read ({e})") from e
    (staged,) = con.execute("select count(*) from _staged").fetchone()
    (broken,) = con.execute("select count(*) from _csv_errors").fetchone()
    if staged + broken == 0 and not contract.allow_empty:
        raise LandingFileError(
            f"{path}: has a header but no rows; an empty {contract.table} delivery is not valid"
        )
    return staged + broken


# --- the rules --------------------------------------------------------------------------------


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def violations_sql(contract: SourceContract, partition_date: str | None) -> str:
    """SQL over `_staged` giving one row per broken rule: (source_row, column_name, reason, value).

    `partition_date` is the daily partition the file belongs to; rows whose partition column
    falls on another day break the contract. Duplicates are checked within the file and, for
    partitioned tables, against rows already loaded for other partitions.
    """
    checks: list[str] = []
    for c in contract.columns:
        col = f'"{c.name}"'
        name = _quote(c.name)
        if c.required:
            checks.append(
                f"select _source_row, {name}, 'null in required column', {col} "
                f"from _staged where {col} is null or trim({col}) = ''"
            )
        if c.data_type != "varchar":
            checks.append(
                f"select _source_row, {name}, {_quote('not a valid ' + c.data_type)}, {col} "
                f"from _staged where trim({col}) <> '' and try_cast({col} as {c.data_type}) is null"
            )
        if c.accepted_values:
            allowed = ", ".join(_quote(v) for v in c.accepted_values)
            reason = _quote(f"not one of {list(c.accepted_values)}")
            checks.append(
                f"select _source_row, {name}, {reason}, {col} "
                f"from _staged where {col} is not null and {col} not in ({allowed})"
            )
        if c.unique:
            checks.append(
                f"select _source_row, {name}, 'duplicate of row ' || first_row || ' in this file', "
                f"{col} from (select _source_row, {col}, "
                f"min(_source_row) over (partition by {col}) as first_row "
                f"from _staged where {col} is not null) where _source_row <> first_row"
            )
            if not contract.snapshot and partition_date is not None:
                checks.append(
                    f"select s._source_row, {name}, "
                    f"'duplicate of a row already loaded from ' || any_value(t._source_file), "
                    f"s.{col} from _staged s join {contract.qualified_name} t "
                    f"on t.{col} = try_cast(s.{col} as {c.data_type}) "
                    f"where t._partition_date <> date {_quote(partition_date)} "
                    f"group by s._source_row, s.{col}"
                )
    if contract.partition_column and partition_date is not None:
        col = f'"{contract.partition_column}"'
        checks.append(
            f"select _source_row, {_quote(contract.partition_column)}, "
            f"{_quote('outside partition ' + partition_date)}, {col} from _staged "
            f"where try_cast({col} as timestamp) is not null "
            f"and cast(try_cast({col} as timestamp) as date) <> date {_quote(partition_date)}"
        )
    checks.append(
        "select line, column_name, error_type || ': ' || error_message, csv_line from _csv_errors"
    )
    return "\nunion all\n".join(checks)


# --- the load ---------------------------------------------------------------------------------


def load_file(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    path: Path,
    partition_key: str,
    run_id: str = "",
) -> LoadResult:
    """Load one landing file as the whole of its partition (or, for snapshots, of its table).

    Raises `LandingFileError` for a file that cannot be loaded at all; the file-level fault is
    recorded in the quarantine and the loaded data is left as it was.
    """
    date.fromisoformat(partition_key)  # a malformed key is a bug upstream: fail loudly
    ensure_raw_table(con, contract)
    try:
        rows_read = stage_file(con, path, contract)
    except LandingFileError as e:
        _quarantine_file_fault(con, contract, path, partition_key, str(e), run_id)
        raise

    partition_date = None if contract.snapshot else partition_key
    con.execute(
        "create or replace temp table _violations as "
        "select #1 as source_row, #2 as column_name, #3 as reason, #4 as value "
        f"from ({violations_sql(contract, partition_date)})"
    )
    columns = ", ".join(f'"{c.name}"' for c in contract.columns)
    typed = ", ".join(f'cast("{c.name}" as {c.data_type})' for c in contract.columns)
    record = ", ".join(f"'{c.name}': s.\"{c.name}\"" for c in contract.columns)
    if contract.snapshot:
        replace_where = "true"
        partition_value = "null"
    else:
        replace_where = f"_partition_date = date {_quote(partition_key)}"
        partition_value = f"date {_quote(partition_key)}"

    con.execute("begin transaction")
    try:
        con.execute(f"delete from {contract.qualified_name} where {replace_where}")
        con.execute(
            f"""
            insert into {contract.qualified_name}
                ({columns}, _source_file, _source_row, _partition_date, _loaded_at)
            select {typed}, ?, _source_row, {partition_value}, current_timestamp
            from _staged
            anti join _violations v on v.source_row = _staged._source_row
            """,
            [str(path)],
        )
        con.execute(
            f"delete from {QUARANTINE_TABLE} where source_table = ? and partition_key = ?",
            [contract.qualified_name, partition_key],
        )
        con.execute(
            f"""
            insert into {QUARANTINE_TABLE}
            select ?, ?, ?, v.source_row, v.column_name, v.reason, v.value,
                   case when s._source_row is null then v.value  -- a line DuckDB could not split
                        else to_json({{{record}}})::varchar end,
                   ?, current_timestamp
            from _violations v
            left join _staged s on s._source_row = v.source_row
            """,
            [contract.qualified_name, partition_key, str(path), run_id],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise

    (rejected,) = con.execute("select count(distinct source_row) from _violations").fetchone()
    by_reason = dict(
        con.execute(
            "select column_name || ': ' || reason, count(*) from _violations "
            "group by all order by 2 desc"
        ).fetchall()
    )
    return LoadResult(
        table=contract.qualified_name,
        partition_key=partition_key,
        source_file=str(path),
        rows_read=rows_read,
        rows_loaded=rows_read - rejected,
        rows_rejected=rejected,
        violations_by_reason=by_reason,
    )


def _quarantine_file_fault(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    path: Path,
    partition_key: str,
    reason: str,
    run_id: str,
) -> None:
    """Record a whole-file fault so it can be queried next to row-level rejections."""
    con.execute("begin transaction")
    con.execute(
        f"delete from {QUARANTINE_TABLE} where source_table = ? and partition_key = ? "
        "and source_row is null",
        [contract.qualified_name, partition_key],
    )
    con.execute(
        f"insert into {QUARANTINE_TABLE} values (?, ?, ?, null, null, ?, null, null, ?, "
        "current_timestamp)",
        [contract.qualified_name, partition_key, str(path), reason, run_id],
    )
    con.execute("commit")
