"""Loading files whose rows spread over partitions: a month's or an hour's file, a file covering
any span. Each file is staged and checked once per run, whatever the number of partitions it
covers, and each row is placed into its partition by the contract's partition column.

Every row read is accounted for, per file (`FileReconciliation`):
rows read = rows loaded + rows quarantined + rows held back + rows of other partitions, where
- loaded: rows that broke no rule, now in a partition of the run;
- quarantined: rows written to the quarantine by this load: a broken rule in a partition of the
  run (with that partition), or a row that falls in no partition at all (partition column null
  or not a timestamp, outside the dated file's own hour, day or month, before the first or after
  the last partition; with no partition, the reason naming the file, line and column);
- held back: rows of a partition of the run that kept the rows it had, because its rejected
  share was over the threshold (its good rows) or a file of it could not be loaded (all of them);
- of other partitions: rows of a valid partition this run does not load (another range's).

The partitions are replaced in one transaction with their quarantine rows and the files' rows
of no partition: a re-load is idempotent, a failure leaves the previous state. No Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from data_platform.raw.contract import SourceContract
from data_platform.raw.ingest import LoadResult, _utc_session, ensure_raw_table
from data_platform.raw.landing import (
    LandingFault,
    LandingFileError,
    PartitionWindow,
    SpreadPlan,
    file_key,
    file_window,
)
from data_platform.raw.staging import stage_file
from data_platform.raw.violations import quote, typed, violations_sql
from headwater_core.names import QUARANTINE_TABLE


@dataclass
class FileReconciliation:
    """One file's rows: read = loaded + quarantined + held_back + other_partitions."""

    source_file: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_held_back: int = 0
    rows_other_partitions: int = 0
    fault: str = ""
    """Why the file could not be read at all (then it read nothing)."""

    @property
    def balanced(self) -> bool:
        kept = self.rows_loaded, self.rows_quarantined, self.rows_held_back
        return self.rows_read == sum(kept) + self.rows_other_partitions


@dataclass
class SpreadResult:
    """One load of a table from files spread over partitions: each file's rows, a result per
    partition of the run that loaded or was held back (0 loaded), a fault per failed one."""

    files: list[FileReconciliation]
    partitions: list[LoadResult]
    faults: list[LandingFault] = field(default_factory=list)


def _create_run_tables(
    con: duckdb.DuckDBPyConnection, contract: SourceContract, windows: list[PartitionWindow]
) -> None:
    con.execute(
        "create or replace temp table _windows (partition_key varchar, partition_date date, "
        "w_start timestamp, w_end timestamp, status varchar)"
    )
    # one statement for the lot: a row per partition is a 2-year range's 730 round trips
    con.execute(
        "insert into _windows select unnest(?), unnest(?), unnest(?), unnest(?), null",
        [
            [w.key for w in windows],
            [w.start.date() for w in windows],
            [w.start for w in windows],
            [w.end for w in windows],
        ],
    )
    columns = ", ".join(f'"{c.name}" {c.data_type}' for c in contract.columns)
    con.execute(
        f"create or replace temp table _run_rows ({columns}, _source_file varchar, "
        "_source_row bigint, partition_key varchar, partition_date date)"
    )
    con.execute(
        "create or replace temp table _run_placed (source_file varchar, source_row bigint, "
        "partition_key varchar, rejected boolean)"
    )
    con.execute(
        "create or replace temp table _run_violations (partition_key varchar, source_file "
        "varchar, source_row bigint, column_name varchar, reason varchar, value varchar, "
        "record varchar)"
    )


def _place(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    path: Path,
    bounds: tuple[datetime, datetime | None],
) -> None:
    """`_placed`: each staged row's partition of the run, or why it has none."""
    column = contract.partition_column
    key = file_key(contract, path)
    own = file_window(contract, key) if key else None
    first, last = bounds
    outside_file = (
        f"when _t < timestamp '{own[0]}' or _t >= timestamp '{own[1]}' then 'outside_file'"
        if own
        else ""
    )
    after_last = f"or _t >= timestamp '{last}'" if last else ""
    con.execute(
        f"""
        create or replace temp table _placed as
        select s._source_row as source_row, w.partition_key, s._t,
               case when s._t is null then 'unplaceable'
                    {outside_file}
                    when _t < timestamp '{first}' {after_last} then 'outside'
                    when w.partition_key is null then 'other'
                    else 'run' end as place
        from (select *, {typed(f's."{column}"', "timestamp")} as _t from _staged s) s
        left join _windows w on s._t >= w.w_start and s._t < w.w_end
        """
    )
    where = f"{quote(path.name)} || ' line ' || p.source_row || ', column {column}: '"
    outside_own = quote(f" is outside the file's {contract.delivery} {key}")
    outside_all = quote(f" is outside the partitions ({first} .. {last or 'now'})")
    con.execute(
        f"""
        insert into _violations
        select p.source_row, {quote(column)},
               {where} || case p.place
                   when 'unplaceable' then 'null or not a timestamp, so the row is in no partition'
                   when 'outside_file' then p._t || {outside_own}
                   when 'outside' then p._t || {outside_all}
               end,
               s."{column}"
        from _placed p join _staged s on s._source_row = p.source_row
        where p.place in ('unplaceable', 'outside_file', 'outside')
        """
    )


def _in_window(contract: SourceContract) -> str:
    """SQL: the raw table's row `t` falls in the partition `w`."""
    column = f't."{contract.partition_column}"'
    return f"{column} >= w.w_start and {column} < w.w_end"


def _duplicates_of_other_partitions(con: duckdb.DuckDBPyConnection, contract: SourceContract):
    """A unique key already loaded in a partition the run does not replace, or by an earlier
    file of this run."""
    for c in contract.columns:
        if not c.unique:
            continue
        col = f'"{c.name}"'
        con.execute(
            f"""
            insert into _violations
            select s._source_row, {quote(c.name)},
                   'duplicate of a row already loaded from ' || any_value(t._source_file), s.{col}
            from _staged s
            join _placed p on p.source_row = s._source_row and p.place = 'run'
            join (select {col}, _source_file from {contract.qualified_name} t
                  where not exists (select 1 from _windows w where {_in_window(contract)})
                  union all select {col}, _source_file from _run_rows) t
              on t.{col} = {typed("s." + col, c.data_type)}
            group by s._source_row, s.{col}
            """
        )


def _keep(con: duckdb.DuckDBPyConnection, contract: SourceContract, path: Path) -> None:
    """The file's placed rows, good rows and violations added to the run's tables."""
    source = quote(str(path))
    values = ", ".join(typed(f's."{c.name}"', c.data_type, cast="cast") for c in contract.columns)
    record = ", ".join(f"'{c.name}': s.\"{c.name}\"" for c in contract.columns)
    con.execute(
        f"""
        insert into _run_placed
        select {source}, source_row, partition_key,
               source_row in (select source_row from _violations)
        from _placed where place = 'run'
        """
    )
    con.execute(
        f"""
        insert into _run_rows
        select {values}, {source}, s._source_row, p.partition_key, w.partition_date
        from _staged s join _placed p on p.source_row = s._source_row and p.place = 'run'
        join _windows w on w.partition_key = p.partition_key
        anti join _violations v on v.source_row = s._source_row
        """
    )
    con.execute(
        f"""
        insert into _run_violations
        select case when p.place = 'run' then p.partition_key end, {source}, v.source_row,
               v.column_name, v.reason, v.value,
               case when s._source_row is null then v.value  -- a line DuckDB could not split
                    else to_json({{{record}}})::varchar end
        from _violations v
        left join _placed p on p.source_row = v.source_row
        left join _staged s on s._source_row = v.source_row
        where p.place is null or p.place <> 'other'
        """
    )


def _read_file(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    path: Path,
    bounds: tuple[datetime, datetime | None],
) -> FileReconciliation:
    """Stage, check and place one file; raises `LandingFileError` if it cannot be read."""
    rows_read = stage_file(con, path, contract)
    con.execute(
        "create or replace temp table _violations as "
        "select #1 as source_row, #2 as column_name, #3 as reason, #4 as value "
        f"from ({violations_sql(contract, None)})"
    )
    _place(con, contract, path, bounds)
    _duplicates_of_other_partitions(con, contract)
    _keep(con, contract, path)
    ((placeless, other),) = con.execute(
        "select count(*) filter (where place not in ('run', 'other')), "
        "count(*) filter (where place = 'other') from _placed"
    ).fetchall()
    (broken_lines,) = con.execute("select count(*) from _csv_errors").fetchone()
    return FileReconciliation(
        str(path),
        rows_read=rows_read,
        rows_quarantined=placeless + broken_lines,
        rows_other_partitions=other,
    )


def _decide(
    con: duckdb.DuckDBPyConnection, failed: set[str], max_rejected_share: float | None
) -> None:
    """Each partition of the run replaced, held back (over the threshold) or failed."""
    share = "null" if max_rejected_share is None else repr(float(max_rejected_share))
    con.execute(
        f"""
        update _windows w set status = case
            when list_contains(?, w.partition_key) then 'failed'
            when {share} is null or c.rejected <= {share} * c.n then 'replace'
            else 'held' end
        from (
            select w.partition_key, count(p.source_row) as n,
                   count(p.source_row) filter (p.rejected) as rejected
            from _windows w left join _run_placed p using (partition_key) group by all
        ) c
        where c.partition_key = w.partition_key
        """,
        [sorted(failed)],
    )


def _replace(
    con: duckdb.DuckDBPyConnection, contract: SourceContract, files: list[str], run_id: str
) -> None:
    """The partitions to replace replaced, and the quarantine rows of every partition that
    loaded or was held back and of the files read, in one transaction."""
    columns = ", ".join(f'"{c.name}"' for c in contract.columns)
    read = ", ".join(quote(f) for f in files) or "null"
    con.execute("begin transaction")
    try:
        # by the partition column, not `_partition_date` (a partition's first day): partitions
        # finer than a day share one
        con.execute(
            f"delete from {contract.qualified_name} t where exists "
            f"(select 1 from _windows w where w.status = 'replace' and {_in_window(contract)})"
        )
        con.execute(
            f"""
            insert into {contract.qualified_name}
                ({columns}, _source_file, _source_row, _partition_date, _loaded_at)
            select {columns}, _source_file, _source_row, partition_date, current_timestamp
            from _run_rows
            where partition_key in (select partition_key from _windows where status = 'replace')
            """
        )
        con.execute(
            f"""
            delete from {QUARANTINE_TABLE} where source_table = ? and (
                partition_key in (select partition_key from _windows where status <> 'failed')
                or (partition_key is null and source_file in ({read})))
            """,
            [contract.qualified_name],
        )
        con.execute(
            f"""
            insert into {QUARANTINE_TABLE}
            select ?, partition_key, source_file, source_row, column_name, reason, value,
                   record, ?, current_timestamp
            from _run_violations
            where partition_key is null or partition_key in
                (select partition_key from _windows where status <> 'failed')
            """,
            [contract.qualified_name, run_id],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _reconcile(con: duckdb.DuckDBPyConnection, files: list[FileReconciliation]) -> None:
    """Each file's rows of the run's partitions counted by what became of their partition."""
    counts = {
        source: (loaded, quarantined, held)
        for source, loaded, quarantined, held in con.execute(
            """
            select p.source_file,
                   count(*) filter (where w.status = 'replace' and not p.rejected),
                   count(*) filter (where w.status <> 'failed' and p.rejected),
                   count(*) filter (where w.status = 'failed'
                                    or (w.status = 'held' and not p.rejected))
            from _run_placed p join _windows w using (partition_key) group by all
            """
        ).fetchall()
    }
    for f in files:
        f.rows_loaded, quarantined, f.rows_held_back = counts.get(f.source_file, (0, 0, 0))
        f.rows_quarantined += quarantined


def _partition_results(
    con: duckdb.DuckDBPyConnection, contract: SourceContract
) -> list[LoadResult]:
    reasons: dict[str, dict[str, int]] = {}
    for key, reason, n in con.execute(
        "select partition_key, column_name || ': ' || reason, count(*) from _run_violations "
        "where partition_key is not null group by all"
    ).fetchall():
        reasons.setdefault(key, {})[reason] = n
    rows = con.execute(
        """
        select w.partition_key, w.status, coalesce(string_agg(distinct p.source_file, ', '), ''),
               count(p.source_row), count(p.source_row) filter (where p.rejected)
        from _windows w left join _run_placed p using (partition_key)
        where w.status <> 'failed' group by all order by 1
        """
    ).fetchall()
    return [
        LoadResult(
            table=contract.qualified_name,
            partition_key=key,
            source_file=sources,
            rows_read=n,
            rows_loaded=n - rejected if status == "replace" else 0,
            rows_rejected=rejected,
            violations_by_reason=reasons.get(key, {}),
        )
        for key, status, sources, n, rejected in rows
    ]


def load_spread(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    plan: SpreadPlan,
    windows: list[PartitionWindow],
    bounds: tuple[datetime, datetime | None],
    run_id: str = "",
    max_rejected_share: float | None = None,
) -> SpreadResult:
    """Load the run's partitions `windows` from the files of `plan`, each file read once.

    `bounds` is the time of all partitions, [first start, last end) (end None: open); a row
    outside it is quarantined. A file that cannot be read fails the partitions it covers (they
    keep the rows they had); the others load."""
    ensure_raw_table(con, contract)
    faults, files = list(plan.faults), []
    with _utc_session(con):
        _create_run_tables(con, contract, windows)
        for path, keys in plan.covers.items():
            try:
                files.append(_read_file(con, contract, path, bounds))
            except LandingFileError as e:
                faults.extend(LandingFault(k, path, str(e)) for k in keys)
                files.append(FileReconciliation(str(path), fault=str(e)))
        _decide(con, {f.partition_key for f in faults}, max_rejected_share)
        _replace(con, contract, [f.source_file for f in files if not f.fault], run_id)
        _reconcile(con, files)
        partitions = _partition_results(con, contract)
    return SpreadResult(files, partitions, faults)
