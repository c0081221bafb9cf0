"""What is new in the landing folder since the landing sensor last looked.

The sensor's cursor records, per raw table, a stamp (modification time and size) of every file
it has asked a run for: a daily table's files by day, a snapshot table's newest file. A scan
compares the folder with that record and groups the new daily files into ranges of consecutive
days, shared by the tables that have files for exactly those days. Plain functions, no Dagster
import: the sensor turns a scan into run requests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from data_platform.raw.contract import SourceContract
from data_platform.raw.landing import LandingFileError, find_landing_files


def file_stamp(path: Path) -> str:
    """What the cursor records of a file: it changed if this changed."""
    stat = path.stat()
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def consecutive_ranges(keys: list[str]) -> list[tuple[str, str]]:
    """Sorted day keys grouped into runs of consecutive days: [(first, last), ...]."""
    ranges: list[tuple[str, str]] = []
    for key in sorted(keys):
        day = date.fromisoformat(key)
        if ranges and date.fromisoformat(ranges[-1][1]) + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
    return ranges


def digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass
class LandingScan:
    """One look at the landing folder against the cursor's record of the files already seen."""

    seen: dict[str, dict[str, str]]
    """The cursor's record, updated with every file the scan asks a run for."""
    snapshot_changes: list[tuple[str, str]] = field(default_factory=list)
    """(table, stamp) of each snapshot table whose newest file is new or changed."""
    daily_ranges: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    """(first day, last day) -> [(table, the stamps of its files in the range)]."""
    skipped: list[str] = field(default_factory=list)
    """Why files were left out: a folder that cannot be read, a day outside the partitions."""
    waiting: int = 0
    """New daily files held back until the warehouse's first build (not recorded as seen)."""

    def cursor(self) -> str:
        return json.dumps(self.seen, sort_keys=True)

    def files(self, contract: SourceContract, landing_dir: Path) -> dict[str, Path] | None:
        """The table's landing files, or None (and the reason in `skipped`) if ambiguous."""
        try:
            return find_landing_files(contract, landing_dir)
        except LandingFileError as e:
            self.skipped.append(str(e))
            return None


def _scan_snapshot(scan: LandingScan, contract: SourceContract, landing_dir: Path) -> None:
    files = scan.files(contract, landing_dir)
    if files:
        key = max(files)
        stamp = f"{key}:{file_stamp(files[key])}"
        if scan.seen.get(contract.table, {}).get("newest") != stamp:
            scan.snapshot_changes.append((contract.table, stamp))


def _new_daily_keys(
    scan: LandingScan,
    contract: SourceContract,
    landing_dir: Path,
    warehouse_built: bool,
    in_partitions: Callable[[str], bool],
) -> list[str]:
    """The table's days with a new or changed file, recorded as seen."""
    files = scan.files(contract, landing_dir)
    if files is None:
        return []
    table_seen = scan.seen.setdefault(contract.table, {})
    new_keys: list[str] = []
    for partition_key, path in sorted(files.items()):
        stamp = file_stamp(path)
        if table_seen.get(partition_key) == stamp:
            continue
        if not in_partitions(partition_key):
            scan.skipped.append(f"{path}: {partition_key} is outside the daily partitions")
            continue
        if not warehouse_built:
            # Not recorded in the cursor: it is requested on the tick after the
            # warehouse's first build.
            scan.waiting += 1
            continue
        new_keys.append(partition_key)
        table_seen[partition_key] = stamp
    return new_keys


def _scan_daily(
    scan: LandingScan,
    contract: SourceContract,
    landing_dir: Path,
    warehouse_built: bool,
    in_partitions: Callable[[str], bool],
) -> None:
    new_keys = _new_daily_keys(scan, contract, landing_dir, warehouse_built, in_partitions)
    table_seen = scan.seen.get(contract.table, {})
    # Consecutive days go in one run (the daily assets load a range in one run and one
    # dbt invocation), so a first start with 90 days of files is one run, not 180.
    for first, last in consecutive_ranges(new_keys):
        stamps = ",".join(table_seen[k] for k in new_keys if first <= k <= last)
        scan.daily_ranges.setdefault((first, last), []).append((contract.table, stamps))


def scan_landing(
    cursor: str | None,
    contracts: Sequence[SourceContract],
    landing_dir: Path,
    warehouse_built: bool,
    in_partitions: Callable[[str], bool],
) -> LandingScan:
    """What changed in `landing_dir` since the sensor's `cursor`.

    Daily files wait while `warehouse_built` is false, because the daily facts select from the
    unpartitioned warehouse; `in_partitions` says whether a day is a daily partition."""
    scan = LandingScan(seen=json.loads(cursor) if cursor else {})
    for contract in contracts:
        if contract.snapshot:
            _scan_snapshot(scan, contract, landing_dir)
    for table, stamp in scan.snapshot_changes:
        scan.seen.setdefault(table, {})["newest"] = stamp
    for contract in contracts:
        if not contract.snapshot:
            _scan_daily(scan, contract, landing_dir, warehouse_built, in_partitions)
    return scan
