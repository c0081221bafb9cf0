"""Loading landing files into the `raw` schema under the contract.

One file loads in one DuckDB transaction:
1. the file is staged as text (every column VARCHAR, with its line or row number), after checks
   that fail the whole file with a message naming it: unreadable, empty, wrong columns
   (`staging.stage_file`);
2. every contract rule is checked row by row (`violations.violations_sql`), giving one violation
   per broken rule with the row, column, reason and offending value;
3. the partition's rows are deleted and the good rows inserted, cast to their declared types,
   and the partition's quarantine rows are replaced by the new violations (`quarantine`).

So a re-load replaces exactly its partition, a bad row never reaches `raw`, and a bad file
changes nothing that was loaded before. Finding the files is `landing`'s. No Dagster import here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from data_platform.raw.contract import LINEAGE_COLUMNS, SourceContract
from data_platform.raw.landing import (
    LandingFileError,
    find_landing_files,
    newest_snapshot_file,
)
from data_platform.raw.quarantine import (
    QUARANTINE_COLUMNS,
    quarantine_file_fault,
    replace_quarantined_rows,
)
from data_platform.raw.staging import stage_file
from data_platform.raw.violations import in_window, quote, typed, violations_sql
from headwater_core.names import QUARANTINE_TABLE


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


# --- tables -----------------------------------------------------------------------------------


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> None:
    ddl = ", ".join(f'"{name}" {dtype}' for name, dtype in columns.items())
    con.execute(f"create table if not exists {table} ({ddl})")
    # pragma_table_info reads the one table (0.3 ms); information_schema.columns lists every
    # column of the catalog first (3 ms, and a raw step asks for three or four tables).
    found = con.execute("select name from pragma_table_info(?)", [table]).fetchall()
    existing = {row[0] for row in found}
    for column, dtype in columns.items():
        if column not in existing:
            con.execute(f'alter table {table} add column "{column}" {dtype}')


def ensure_raw_table(con: duckdb.DuckDBPyConnection, contract: SourceContract) -> None:
    """Create the raw table and the quarantine if missing; add columns the contract gained."""
    con.execute(f"create schema if not exists {contract.schema}")
    columns = {**{c.name: c.data_type for c in contract.columns}, **LINEAGE_COLUMNS}
    _ensure_table(con, contract.qualified_name, columns)
    _ensure_table(con, QUARANTINE_TABLE, QUARANTINE_COLUMNS)
    for parent in {t.parent.table: t.parent for t in contract.row_tests if t.parent}.values():
        ensure_raw_table(con, parent)  # a `relationships` test reads it, loaded or not


def ensure_raw_tables(con: duckdb.DuckDBPyConnection, contracts: Iterable[SourceContract]) -> None:
    """Create every declared raw table, empty if nothing has landed yet, so that the staging
    views over them can always be built."""
    for contract in contracts:
        ensure_raw_table(con, contract)


# --- the load ---------------------------------------------------------------------------------


def load_file(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    path: Path,
    partition_key: str,
    run_id: str = "",
    max_rejected_share: float | None = None,
) -> LoadResult:
    """Load one landing file as the whole of its partition (or, for snapshots, of its table).

    Raises `LandingFileError` for a file that cannot be loaded at all; the file-level fault is
    recorded in the quarantine and the loaded data is left as it was. When more than
    `max_rejected_share` of the file's rows break the contract, only its quarantine rows are
    replaced: the partition keeps the rows it had, and the result says 0 loaded.
    """
    if not contract.snapshot:  # a malformed key is a bug upstream: fail loudly
        contract.partitions.window(partition_key)
    ensure_raw_table(con, contract)
    with _utc_session(con):
        try:
            rows_read = stage_file(con, path, contract)
        except LandingFileError as e:
            quarantine_file_fault(con, contract, path, partition_key, str(e), run_id)
            raise
        replaced = _check_and_replace(
            con, contract, path, partition_key, run_id, rows_read, max_rejected_share
        )
    result = _load_result(con, contract, path, partition_key, rows_read)
    return result if replaced else dataclasses.replace(result, rows_loaded=0)


def load_landing(
    database: Path,
    landing: Path,
    contracts: Iterable[SourceContract],
    partitions: Callable[[str], bool] = lambda key: True,
    snapshots: bool = True,
) -> list[LoadResult]:
    """Load a landing folder into the raw tables of `database`, file by file as the raw assets
    do: the partitions whose key `partitions` accepts and, with `snapshots`, each snapshot
    source's newest file. For worlds built outside Dagster (tests, the serve benchmark)."""
    contracts, results = list(contracts), []
    con = duckdb.connect(str(database))
    try:
        ensure_raw_tables(con, contracts)
        for contract in contracts:
            if contract.snapshot:
                if snapshots:
                    key, path = newest_snapshot_file(contract, landing)
                    results.append(load_file(con, contract, path, key))
                continue
            for key, path in find_landing_files(contract, landing).items():
                if partitions(key):
                    results.append(load_file(con, contract, path, key))
    finally:
        con.close()
    return results


@contextmanager
def _utc_session(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The session's TimeZone set to UTC for a load, then given back: a landed timestamp is
    read as TIMESTAMPTZ, so a naive one keeps its wall time (UTC) and one with an offset or a
    zone is converted to UTC (`violations.typed`)."""
    (zone,) = con.execute("select current_setting('TimeZone')").fetchone()
    con.execute("set session TimeZone = 'UTC'")
    try:
        yield
    finally:
        con.execute(f"set session TimeZone = {quote(zone)}")


def _check_and_replace(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    path: Path,
    partition_key: str,
    run_id: str,
    rows_read: int,
    max_rejected_share: float | None,
) -> bool:
    """The staged file's violations found, then its partition and quarantine rows replaced in
    one transaction; over `max_rejected_share`, the quarantine rows alone (returns False)."""

    partition_date = None if contract.snapshot else partition_key
    con.execute(
        "create or replace temp table _violations as "
        "select #1 as source_row, #2 as column_name, #3 as reason, #4 as value "
        f"from ({violations_sql(contract, partition_date)})"
    )
    ((rejected,),) = con.execute("select count(distinct source_row) from _violations").fetchall()
    replace = max_rejected_share is None or rejected <= max_rejected_share * rows_read
    con.execute("begin transaction")
    try:
        if replace:
            _replace_partition(con, contract, path, partition_key)
        replace_quarantined_rows(con, contract, path, partition_key, run_id)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return replace


def _replace_partition(
    con: duckdb.DuckDBPyConnection, contract: SourceContract, path: Path, partition_key: str
) -> None:
    """The partition's rows (a snapshot's: the table's) replaced by the staged rows that broke
    no rule, cast to their declared types, with their lineage columns."""
    columns = ", ".join(f'"{c.name}"' for c in contract.columns)
    values = ", ".join(typed(f'"{c.name}"', c.data_type, cast="cast") for c in contract.columns)
    if contract.snapshot:
        replace_where = "true"
        partition_value = "null"
    else:
        # the partition's first day; hours of one day share it, and their own window tells
        # them apart
        partition_value = f"date {quote(partition_key[:10])}"
        replace_where = f"_partition_date = {partition_value}"
        if contract.partitions.grain == "hourly" and contract.partition_column:
            at = f'"{contract.partition_column}"'
            replace_where += f" and {in_window(contract, partition_key, at)}"
    con.execute(f"delete from {contract.qualified_name} where {replace_where}")
    con.execute(
        f"""
        insert into {contract.qualified_name}
            ({columns}, _source_file, _source_row, _partition_date, _loaded_at)
        select {values}, ?, _source_row, {partition_value}, current_timestamp
        from _staged
        anti join _violations v on v.source_row = _staged._source_row
        """,
        [str(path)],
    )


def _load_result(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    path: Path,
    partition_key: str,
    rows_read: int,
) -> LoadResult:
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
