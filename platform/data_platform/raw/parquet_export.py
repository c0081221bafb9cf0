"""The raw tables, as the ingestion loaded and checked them, exported to Parquet: how raw data
reaches a warehouse on Spark (docs/scale-out.md).

Ingestion stays one path: the contract's checks, the quarantine and the day's replace happen in
one DuckDB transaction (raw/ingest.py). What Spark reads is the result, one folder per raw table,
`<folder>/<table>/part-0.parquet`, which the dbt project's spark target registers as external
tables before each run (dbt_project/macros/cross_db/raw_parquet.sql). Timestamps are written as
they are stored, UTC wall-clock time without a zone.                                   (DuckDB)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import duckdb

from data_platform.raw.contract import SourceContract

PARQUET_FILE = "part-0.parquet"


def export_raw_parquet(
    con: duckdb.DuckDBPyConnection, contracts: Iterable[SourceContract], folder: Path
) -> dict[str, int]:
    """Write every contract's raw table to `<folder>/<table>/`, replacing what was there;
    rows written per table.

    Each table's file is written beside the old one and moved into place, so a reader sees the
    old export or the new one, never half a file.
    """
    folder = Path(folder)
    written = {}
    for contract in contracts:
        table_dir = folder / contract.table
        table_dir.mkdir(parents=True, exist_ok=True)
        staged = table_dir / f".{PARQUET_FILE}.tmp"
        con.execute(
            f"copy (select * from {contract.qualified_name}) to '{staged}' "
            "(format parquet, compression zstd)"
        )
        os.replace(staged, table_dir / PARQUET_FILE)
        for other in table_dir.iterdir():  # an older layout's files would be read too
            if other.name != PARQUET_FILE:
                shutil.rmtree(other) if other.is_dir() else other.unlink()
        ((rows,),) = con.execute(f"select count(*) from {contract.qualified_name}").fetchall()
        written[contract.qualified_name] = rows
    return written
