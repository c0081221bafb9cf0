"""The quarantine: every row and file the contract refused, in one table next to `raw`.

One row per broken rule, with the table, partition, file, row, column, reason, offending value
and the whole record as JSON; a whole-file fault is one row with no source row. A partition's
quarantine rows are replaced with its load, so they always describe its latest delivery. No
Dagster import here.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from data_platform.raw.contract import SourceContract
from headwater_core.names import QUARANTINE_TABLE

QUARANTINE_COLUMNS = {
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


def replace_quarantined_rows(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    path: Path,
    partition_key: str,
    run_id: str,
) -> None:
    """Replace the partition's quarantine rows by the violations of its new file (`_violations`
    over `_staged`). Runs inside the caller's transaction, with the partition's rows."""
    record = ", ".join(f"'{c.name}': s.\"{c.name}\"" for c in contract.columns)
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


def quarantine_file_fault(
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
