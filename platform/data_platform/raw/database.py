"""Raw tables served from a database: new rows read by dlt, loaded under the contract.

A table's `meta.headwater.database` block names the source table (`schema.table`), the
environment variable holding its SQLAlchemy URL, and the cursor column. One load:
1. reads the last cursor value loaded, from `raw.database_cursors` in the warehouse;
2. has dlt's `sql_database` source read the rows above it (`cursor > last`, in cursor order)
   into Parquet files in a work folder (`dlt_source`, `dlt_pipeline`);
3. stages those rows as text in `_staged` and checks them with the rules a landing file gets
   (`violations.violations_sql`), plus what a batch spanning many days needs: each row's day
   (`partitioned_by`) inside the partitions, and `unique` against every row already loaded;
4. in one DuckDB transaction appends the good rows (typed, `_partition_date` = their day), puts
   the refused ones in the quarantine and moves the cursor to the batch's highest value.

The cursor is committed with the rows it covers: a crash anywhere before that commit leaves it
where it was, and the next run reads the same rows again; dlt's own pipeline state goes with its
work folder. A row whose cursor is null is never read (dlt's `exclude`): declare the column
NOT NULL in the source. Over the contract's rejected share only the quarantine rows are written
and the cursor stays, so the batch is read again, once the source is fixed. No Dagster import.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from data_platform.raw.contract import SourceContract
from data_platform.raw.ingest import LoadResult, _utc_session, ensure_raw_table
from data_platform.raw.violations import quote, typed, violations_sql
from headwater_core.names import DATABASE_CURSORS_TABLE, QUARANTINE_TABLE, RAW

DLT_DATASET = "extract"

_CURSORS_COLUMNS = (
    "source_table varchar, location varchar, cursor_column varchar, cursor_value varchar, "
    "cursor_type varchar, refused_run_id varchar, updated_at timestamp"
)


class DatabaseSourceError(RuntimeError):
    """A database source that cannot be read at all (no URL, missing columns)."""


def connection_url(contract: SourceContract) -> str:
    """The SQLAlchemy URL of the contract's database, from its environment variable."""
    assert contract.database is not None
    name = contract.database.connection_env
    url = os.environ.get(name, "")
    if not url:
        raise DatabaseSourceError(
            f"{contract.qualified_name}: environment variable {name} is not set; it must hold "
            f"the SQLAlchemy URL of the database serving {contract.database.table}"
        )
    return url


def location(url: str, contract: SourceContract) -> str:
    """Where the rows come from, for lineage and the quarantine: the URL without its user and
    password, then the source table (`postgresql://127.0.0.1:5432/shop/public.orders`)."""
    from sqlalchemy.engine import make_url

    assert contract.database is not None
    parsed = make_url(url)
    port = f":{parsed.port}" if parsed.port else ""
    return (
        f"{parsed.get_backend_name()}://{parsed.host or ''}{port}/{parsed.database or ''}/"
        f"{contract.database.table}"
    )


def dlt_source(url: str, contract: SourceContract, after: Any) -> Any:
    """dlt's `sql_table` over the source table as a dlt source: the contract's columns of the
    rows whose cursor is above `after` (all rows when None), in cursor order, as Arrow."""
    import dlt
    from dlt.extract.source import DltSource
    from dlt.sources.sql_database import sql_table

    assert contract.database is not None
    schema, table = contract.database.table.split(".")
    resource = sql_table(
        credentials=url,
        schema=schema,
        table=table,
        included_columns=list(contract.column_names),
        backend="pyarrow",
        incremental=dlt.sources.incremental(
            contract.database.cursor_column,
            initial_value=after,
            range_start="open",
            on_cursor_value_missing="exclude",
        ),
    )
    return DltSource.from_data(dlt.Schema(contract.table), "sql_database", resource)


def dlt_pipeline(workdir: Path, contract: SourceContract) -> Any:
    """A dlt pipeline writing Parquet files under `workdir`, its state kept there too."""
    import dlt

    # dlt reports anonymous usage by default; nothing leaves this machine from a load.
    dlt.config["runtime.dlthub_telemetry"] = False
    return dlt.pipeline(
        pipeline_name=f"headwater_{contract.table}",
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=str(workdir / "files")),
        dataset_name=DLT_DATASET,
    )


def extracted_files(workdir: Path) -> list[Path]:
    """The Parquet files dlt wrote for the table (its own `_dlt_*` tables left out)."""
    found = (workdir / "files" / DLT_DATASET).glob("*/*.parquet")
    return sorted(p for p in found if not p.parent.name.startswith("_dlt"))


def last_cursor(con: duckdb.DuckDBPyConnection, contract: SourceContract) -> Any:
    """The highest cursor value loaded so far (typed as the source gave it), None before any."""
    con.execute(f"create schema if not exists {RAW}")
    con.execute(f"create table if not exists {DATABASE_CURSORS_TABLE} ({_CURSORS_COLUMNS})")
    row = con.execute(
        f"select cursor_value, cursor_type from {DATABASE_CURSORS_TABLE} where source_table = ?",
        [contract.qualified_name],
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return con.execute(f"select cast(? as {row[1]})", [row[0]]).fetchone()[0]


def _stage(con: duckdb.DuckDBPyConnection, contract: SourceContract, files: list[Path]) -> int:
    """The batch as text in `_staged`, `_source_row` its position in cursor order; returns the
    rows read. `_csv_errors` is empty: the rows come typed from the source."""
    assert contract.database is not None
    paths = [str(f) for f in files]
    found = [
        r[0] for r in con.execute("describe select * from read_parquet(?)", [paths]).fetchall()
    ]
    missing = [c for c in contract.column_names if c not in found]
    if missing:
        raise DatabaseSourceError(
            f"{contract.qualified_name}: {contract.database.table} has no columns {missing}"
        )
    as_text = ", ".join(f'cast("{c}" as varchar) as "{c}"' for c in contract.column_names)
    con.execute(
        f"""
        create or replace temp table _staged as
        select {as_text},
               row_number() over (order by filename, file_row_number) as _source_row
        from read_parquet(?, filename = true, file_row_number = true)
        """,
        [paths],
    )
    con.execute(
        "create or replace temp table _csv_errors as select null::bigint as line, "
        "null::varchar as column_name, null::varchar as error_type, "
        "null::varchar as error_message, null::varchar as csv_line where false"
    )
    return con.execute("select count(*) from _staged").fetchone()[0]


def _day(column: str) -> str:
    """SQL for the day a staged value falls on (UTC), null where it is not a time."""
    return f"cast({typed(column, 'timestamp')} as date)"


def _batch_checks(contract: SourceContract, first_day: date, end_day: date | None) -> list[str]:
    """The rules a batch of many days adds to a file's: each row on a day of the partitions,
    and each unique key new to the table (a file's check compares against other days only)."""
    checks = []
    for c in contract.columns:
        if c.unique:
            key = typed(f's."{c.name}"', c.data_type)
            checks.append(
                f"select s._source_row, {quote(c.name)}, "
                f"'unique: duplicate of a row already loaded from ' || any_value(t._source_file), "
                f's."{c.name}" from _staged s join {contract.qualified_name} t '
                f'on t."{c.name}" = {key} '
                f'group by s._source_row, s."{c.name}"'
            )
    column = contract.partition_column
    if column:
        col = f'"{column}"'
        outside = f"{_day(col)} < date {quote(first_day.isoformat())}"
        span = f"from {first_day}"
        if end_day is not None:
            outside += f" or {_day(col)} >= date {quote(end_day.isoformat())}"
            span += f" to {end_day} (exclusive)"
        if not contract.column(column).required:  # else `not_null` reports it already
            checks.append(
                f"select _source_row, {quote(column)}, 'null: the row has no day', {col} "
                f"from _staged where {col} is null or trim({col}) = ''"
            )
        checks.append(
            f"select _source_row, {quote(column)}, {quote('outside the partitions, ' + span)}, "
            f"{col} from _staged where {_day(col)} is not null and ({outside})"
        )
    return checks


def _find_violations(
    con: duckdb.DuckDBPyConnection, contract: SourceContract, first_day: date, end_day: date | None
) -> int:
    """Every broken rule of the staged batch in `_violations`; returns the rows refused."""
    checks = "\nunion all\n".join(
        [violations_sql(contract, None), *_batch_checks(contract, first_day, end_day)]
    )
    con.execute(
        "create or replace temp table _violations as "
        "select #1 as source_row, #2 as column_name, "
        "replace(#3, ' in this file', ' in this batch') as reason, #4 as value "
        f"from ({checks})"
    )
    return con.execute("select count(distinct source_row) from _violations").fetchone()[0]


def _append_rows(con: duckdb.DuckDBPyConnection, contract: SourceContract, where: str) -> None:
    """The staged rows that broke no rule appended, typed, with their lineage and day."""
    columns = ", ".join(f'"{c.name}"' for c in contract.columns)
    values = ", ".join(typed(f'"{c.name}"', c.data_type, cast="cast") for c in contract.columns)
    day = _day(f'"{contract.partition_column}"') if contract.partition_column else "null"
    con.execute(
        f"""
        insert into {contract.qualified_name}
            ({columns}, _source_file, _source_row, _partition_date, _loaded_at)
        select {values}, ?, _source_row, {day}, current_timestamp
        from _staged
        anti join _violations v on v.source_row = _staged._source_row
        """,
        [where],
    )


def _quarantine_rows(
    con: duckdb.DuckDBPyConnection, contract: SourceContract, where: str, run_id: str
) -> None:
    """The refused rows in the quarantine: `source_file` is the source table and the row's
    cursor value, `record` the whole row (its key included)."""
    assert contract.database is not None
    cursor = contract.database.cursor_column
    record = ", ".join(f"'{c.name}': s.\"{c.name}\"" for c in contract.columns)
    day = _day(f's."{contract.partition_column}"') if contract.partition_column else "null"
    con.execute(
        f"""
        insert into {QUARANTINE_TABLE}
        select ?, cast({day} as varchar),
               ? || ' where {cursor} = ' || coalesce(s."{cursor}", 'null'),
               v.source_row, v.column_name, v.reason, v.value,
               to_json({{{record}}})::varchar, ?, current_timestamp
        from _violations v join _staged s on s._source_row = v.source_row
        """,
        [contract.qualified_name, where, run_id],
    )


def _save_cursor(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    where: str,
    files: list[Path],
    refused_run_id: str | None,
) -> None:
    """The batch's highest cursor value recorded; a refused batch keeps the previous one and
    names its run, whose quarantine rows the next load replaces."""
    assert contract.database is not None
    cursor = contract.database.cursor_column
    if refused_run_id is None:
        value, value_type = con.execute(
            f'select cast(max("{cursor}") as varchar), typeof(max("{cursor}")) '
            "from read_parquet(?)",
            [[str(f) for f in files]],
        ).fetchone()
    else:
        value, value_type = con.execute(
            f"select any_value(cursor_value), any_value(cursor_type) "
            f"from {DATABASE_CURSORS_TABLE} where source_table = ?",
            [contract.qualified_name],
        ).fetchone()
    con.execute(
        f"delete from {DATABASE_CURSORS_TABLE} where source_table = ?", [contract.qualified_name]
    )
    con.execute(
        f"insert into {DATABASE_CURSORS_TABLE} values (?, ?, ?, ?, ?, ?, current_timestamp)",
        [contract.qualified_name, where, cursor, value, value_type, refused_run_id],
    )


def _forget_refused(con: duckdb.DuckDBPyConnection, contract: SourceContract) -> None:
    """The quarantine rows of a refused batch dropped: this batch reads its rows again."""
    con.execute(
        f"delete from {QUARANTINE_TABLE} where source_table = ? and run_id in "
        f"(select refused_run_id from {DATABASE_CURSORS_TABLE} where source_table = ?)",
        [contract.qualified_name, contract.qualified_name],
    )


def _result(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    where: str,
    rows_read: int,
    rejected: int,
    refused: bool,
) -> LoadResult:
    by_reason = dict(
        con.execute(
            "select column_name || ': ' || reason, count(*) from _violations "
            "group by all order by 2 desc"
        ).fetchall()
    )
    days = ""
    if contract.partition_column:
        day = _day(f'"{contract.partition_column}"')
        first, last = con.execute(f"select min({day}), max({day}) from _staged").fetchone()
        days = f"{first}..{last}" if first else ""
    return LoadResult(
        table=contract.qualified_name,
        partition_key=days,
        source_file=where,
        rows_read=rows_read,
        rows_loaded=0 if refused else rows_read - rejected,
        rows_rejected=rejected,
        violations_by_reason=by_reason,
    )


def load_batch(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    files: list[Path],
    where: str,
    run_id: str,
    first_day: date,
    end_day: date | None = None,
    max_rejected_share: float | None = None,
) -> LoadResult:
    """Load the rows dlt extracted (`files`) from the source at `where` under the contract:
    good rows appended, refused ones quarantined, the cursor moved, in one transaction.

    Rows must fall on a day from `first_day` up to `end_day` (exclusive, None: no end). Over
    `max_rejected_share`, only the quarantine rows are written and the cursor stays (the
    result says 0 loaded). No files (no new rows) changes nothing."""
    ensure_raw_table(con, contract)
    last_cursor(con, contract)  # creates the cursors table on a first load
    if not files:
        return LoadResult(contract.qualified_name, "", where, 0, 0, 0)
    with _utc_session(con):
        rows_read = _stage(con, contract, files)
        rejected = _find_violations(con, contract, first_day, end_day)
        refused = max_rejected_share is not None and rejected > max_rejected_share * rows_read
        con.execute("begin transaction")
        try:
            _forget_refused(con, contract)
            if not refused:
                _append_rows(con, contract, where)
            _quarantine_rows(con, contract, where, run_id)
            _save_cursor(con, contract, where, files, run_id if refused else None)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        return _result(con, contract, where, rows_read, rejected, refused)
