"""One run's load of a raw table: its files found, each loaded, and a fault kept to the
partitions it concerns.

A day file of a daily table is its partition (`landing.plan_load`, `ingest.load_file`); any
other dated or span delivery is read file by file and placed into the run's partitions
(`landing.plan_spread`, `placement.load_spread`); a snapshot table loads its newest file. A
file that cannot be loaded (a fault found by listing, a file still being written, one that
cannot be read) fails only the partitions it covers: it is quarantined, the others load, and
the result names the failed ones. No Dagster import here: the raw asset reports the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from data_platform.raw.contract import SourceContract
from data_platform.raw.ingest import LoadResult, ensure_raw_table, load_file
from data_platform.raw.landing import (
    LandingFault,
    LandingFileError,
    PartitionWindow,
    SpreadPlan,
    one_file_per_partition,
    plan_load,
    plan_spread,
    wait_until_settled,
)
from data_platform.raw.partition_status import FAILED, LOADED, REFUSED
from data_platform.raw.placement import FileReconciliation, load_spread
from data_platform.raw.quarantine import quarantine_file_fault

Log = Callable[[str], None]


@dataclass
class TableLoad:
    """What one run's load did: a result per partition that loaded or kept its rows (a
    snapshot: its file), every file's rows reconciled, and a fault per failed partition."""

    results: list[LoadResult] = field(default_factory=list)
    files: list[FileReconciliation] = field(default_factory=list)
    faults: list[LandingFault] = field(default_factory=list)

    @property
    def failed_partitions(self) -> list[str]:
        return sorted({f.partition_key for f in self.faults})

    def statuses(self) -> dict[str, tuple[str, str]]:
        """Partition key -> (status, reason), for `partition_status`."""
        statuses = {
            r.partition_key: (
                REFUSED,
                f"{r.rows_rejected} of {r.rows_read} rows rejected, "
                f"over the threshold; it kept the rows it had ({r.source_file})",
            )
            if r.rows_read and not r.rows_loaded
            else (LOADED, "")
            for r in self.results
        }
        for f in self.faults:
            statuses[f.partition_key] = (FAILED, f.message)
        return statuses


def _file_rows(result: LoadResult) -> FileReconciliation:
    """A day file's reconciliation: over the threshold its good rows were held back."""
    return FileReconciliation(
        result.source_file,
        rows_read=result.rows_read,
        rows_loaded=result.rows_loaded,
        rows_quarantined=result.rows_rejected,
        rows_held_back=result.rows_read - result.rows_loaded - result.rows_rejected,
    )


def _record_faults(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    faults: Sequence[LandingFault],
    run_id: str,
    log: Log,
) -> None:
    """Each failed partition in the quarantine (no source row; the reason names its files)."""
    ensure_raw_table(con, contract)
    for message in dict.fromkeys(f.message for f in faults):
        log(message)
    for fault in faults:
        quarantine_file_fault(con, contract, fault.path, fault.partition_key, fault.message, run_id)


def _load_files(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    landing_dir: Path,
    keys: Sequence[str],
    run_id: str,
    log: Log,
) -> TableLoad:
    """Each partition from its one file (a snapshot table: the newest file)."""
    plan = plan_load(contract, landing_dir, keys)
    files, unsettled = wait_until_settled(plan.files, contract.settle_seconds)
    load = TableLoad(faults=plan.faults + unsettled)
    _record_faults(con, contract, load.faults, run_id, log)
    for key, path in files:
        try:
            result = load_file(con, contract, path, key, run_id, contract.max_rejected_share)
        except LandingFileError as e:  # quarantined by load_file; the other files load
            log(str(e))
            load.faults.append(LandingFault(key, path, str(e)))
            load.files.append(FileReconciliation(str(path), fault=str(e)))
            continue
        load.results.append(result)
        load.files.append(_file_rows(result))
    load.files += [FileReconciliation(str(f.path), fault=f.message) for f in plan.faults]
    return load


def _settled(plan: SpreadPlan, settle_seconds: float) -> SpreadPlan:
    """The plan without the files still being written: a fault of each partition they cover."""
    stable, unsettled = wait_until_settled(
        [(str(path), path) for path in plan.covers], settle_seconds
    )
    faults = [
        LandingFault(key, fault.path, fault.message)
        for fault in unsettled
        for key in plan.covers[fault.path]
    ]
    return SpreadPlan({path: plan.covers[path] for _, path in stable}, plan.faults + faults)


def load_table(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    landing_dir: Path,
    windows: Sequence[PartitionWindow],
    bounds: tuple[datetime, datetime | None],
    run_id: str = "",
    log: Log = print,
) -> TableLoad:
    """Load the run's partitions `windows` of the table (none for a snapshot table).

    `bounds` is the time of all the partitions, [start of the first, end of the last): a row
    outside it is quarantined. Raises `LandingFileError` only when nothing can be planned (a
    daily file or a table's every file missing); any other fault fails its partitions alone."""
    keys = [w.key for w in windows]
    if contract.snapshot or one_file_per_partition(contract, windows):
        return _load_files(con, contract, landing_dir, keys, run_id, log)
    plan = _settled(plan_spread(contract, landing_dir, windows), contract.settle_seconds)
    spread = load_spread(
        con, contract, plan, list(windows), bounds, run_id, contract.max_rejected_share
    )
    _record_faults(con, contract, spread.faults, run_id, log)
    for path, message in {f.path: f.message for f in plan.faults}.items():
        # a file listed as a fault (not a partition no file covers) is reported with the files
        if path.exists() or path.is_symlink():
            spread.files.append(FileReconciliation(str(path), fault=message))
    return TableLoad(spread.partitions, spread.files, spread.faults)
