"""Whether each partition of a raw table may feed the warehouse: the outcome of its last load.

The raw asset records, for every partition a run tried to load, `loaded`, `refused` (its
rejected share was over the contract's threshold: it kept the rows it had and its blocking check
failed) or `failed` (a file of it could not be loaded), with the reason. The daily warehouse
step reads it before dbt runs and refuses a window holding a refused or failed partition, so a
failed blocking check stops everything downstream of its partition whatever the run selected
(a run that leaves out the staging views has no step between the raw asset and the mart for
Dagster to block). The table lives next to the raw tables; no dbt model reads it. No Dagster
import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb

PARTITION_STATUS_TABLE = "raw._partition_status"
LOADED, REFUSED, FAILED = "loaded", "refused", "failed"


def record_statuses(
    con: duckdb.DuckDBPyConnection,
    source_table: str,
    statuses: Mapping[str, tuple[str, str]],
    run_id: str,
) -> None:
    """Replace the partitions' statuses: partition key -> (status, reason)."""
    con.execute(
        f"create table if not exists {PARTITION_STATUS_TABLE} (source_table varchar, "
        "partition_key varchar, status varchar, reason varchar, run_id varchar, "
        "recorded_at timestamp)"
    )
    keys = sorted(statuses)
    con.execute("begin transaction")
    try:
        con.execute(
            f"delete from {PARTITION_STATUS_TABLE} where source_table = ? "
            "and list_contains(?, partition_key)",
            [source_table, keys],
        )
        con.execute(
            f"insert into {PARTITION_STATUS_TABLE} select ?, unnest(?), unnest(?), unnest(?), "
            "?, current_timestamp",
            [
                source_table,
                keys,
                [statuses[k][0] for k in keys],
                [statuses[k][1] for k in keys],
                run_id,
            ],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def blocked_partitions(
    con: duckdb.DuckDBPyConnection, source_tables: Iterable[str], first: str, last: str
) -> list[tuple[str, str, str, str]]:
    """(table, partition key, status, reason) of each refused or failed partition of the
    tables between `first` and `last` (keys, inclusive)."""
    tables = sorted(source_tables)
    (exists,) = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'raw' and table_name = '_partition_status'"
    ).fetchone()
    if not exists or not tables:
        return []
    return con.execute(
        f"select source_table, partition_key, status, reason from {PARTITION_STATUS_TABLE} "
        "where list_contains(?, source_table) and partition_key between ? and ? "
        f"and status <> '{LOADED}' order by 2, 1",
        [tables, first, last],
    ).fetchall()
