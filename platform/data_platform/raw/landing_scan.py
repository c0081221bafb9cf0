"""What is new in the landing folder since the landing sensor last looked.

The sensor's cursor records, per raw table, a stamp (modification time and size) of every file
it has asked a run for: a daily table's files by day, a snapshot table's newest file. A scan
compares the folder with that record and groups the new daily files into ranges of consecutive
days, shared by the tables that have files for exactly those days. A file modified within its
contract's settle interval may still be written: it is left for a later tick, not recorded. A
day that is a fault (two files, a link out of the landing folder) gets a run of its own, which
fails naming the files and records the fault in the quarantine, and holds up no other day.
A file of another delivery (an hour's, a month's, a span's) asks for the partitions it covers
(`keys_for`: a span file, every partition). Plain functions, no Dagster import: the sensor turns
a scan into run requests.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data_platform.raw.contract import SourceContract
from data_platform.raw.landing import (
    LandingFault,
    LandingFiles,
    file_stamp,
    landing_path,
    list_landing_files,
    settling,
)
from headwater_core.partition_settings import SETTING, PartitionSettings

__all__ = ["LandingScan", "consecutive_ranges", "digest", "file_stamp", "scan_landing"]


def _fault_stamp(fault: LandingFault, landing_dir: Path, contract: SourceContract) -> str:
    """A faulty day's stamp: the stamps of all its files, so removing one is a change."""
    if contract.delivery == "span":
        paths = [fault.path]  # a span file's key is its name
    else:
        pattern = landing_path(contract, landing_dir, fault.partition_key)
        paths = sorted(pattern.parent.glob(pattern.name))
    return "fault:" + digest(",".join(f"{p.name}={file_stamp(p)}" for p in paths))


def consecutive_ranges(
    keys: list[str], partitions: PartitionSettings | None = None
) -> list[tuple[str, str]]:
    """Sorted partition keys grouped into runs of consecutive partitions (days by default):
    [(first, last), ...]."""
    partitions = partitions or PartitionSettings()
    ranges: list[tuple[str, str]] = []
    for key in sorted(keys):
        if ranges and partitions.next_key(ranges[-1][1]) == key:
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
    settling: list[str] = field(default_factory=list)
    """Files modified within their settle interval, left for a later tick (not recorded)."""
    now: float = field(default_factory=time.time)

    def cursor(self) -> str:
        return json.dumps(self.seen, sort_keys=True)

    def files(self, contract: SourceContract, landing_dir: Path) -> LandingFiles:
        """The table's landing files and faulty days; a fault is named in `skipped` too."""
        found = list_landing_files(contract, landing_dir)
        self.skipped.extend(f.message for f in found.faults.values())
        return found

    def settled(self, contract: SourceContract, path: Path) -> bool:
        """Whether `path` is unchanged for its settle interval; if not, noted in `settling`."""
        if settling(path, contract.settle_seconds, self.now):
            self.settling.append(f"{path} (changed within {contract.settle_seconds:g} s)")
            return False
        return True


def _scan_snapshot(scan: LandingScan, contract: SourceContract, landing_dir: Path) -> None:
    found = scan.files(contract, landing_dir)
    days = found.files.keys() | found.faults.keys()
    if not days:
        return
    key = max(days)
    if key in found.faults:
        stamp = f"{key}:{_fault_stamp(found.faults[key], landing_dir, contract)}"
    elif scan.settled(contract, found.files[key]):
        stamp = f"{key}:{file_stamp(found.files[key])}"
    else:
        return
    if scan.seen.get(contract.table, {}).get("newest") != stamp:
        scan.snapshot_changes.append((contract.table, stamp))


KeysFor = Callable[[SourceContract, str], list[str]]


def _covered(
    contract: SourceContract, key: str, in_partitions: Callable[[str], bool], keys_for: KeysFor
) -> list[str]:
    """The partitions a file key covers: a day file's day, if it is a partition."""
    if contract.delivery == "day":
        return [key] if in_partitions(key) else []
    return keys_for(contract, key)


def _new_daily_keys(
    scan: LandingScan,
    contract: SourceContract,
    landing_dir: Path,
    warehouse_built: bool,
    in_partitions: Callable[[str], bool],
    keys_for: KeysFor,
) -> tuple[dict[str, str], dict[str, str]]:
    """The table's partitions with a new or changed file, and those of its new faults, each
    with its file's stamp; the files recorded as seen."""
    found = scan.files(contract, landing_dir)
    table_seen = scan.seen.setdefault(contract.table, {})
    new_keys: dict[str, str] = {}
    fault_keys: dict[str, str] = {}
    days = {**found.files, **{k: f.path for k, f in found.faults.items()}}
    for partition_key, path in sorted(days.items()):
        fault = found.faults.get(partition_key)
        if fault is not None:
            stamp = _fault_stamp(fault, landing_dir, contract)
        elif scan.settled(contract, path):
            stamp = file_stamp(path)
        else:
            continue
        if table_seen.get(partition_key) == stamp:
            continue
        covered = _covered(contract, partition_key, in_partitions, keys_for)
        if not covered:
            daily = "daily " if contract.delivery == "day" else ""
            partitions = contract.partitions
            scan.skipped.append(
                f"{path}: {partition_key} is outside the {daily}partitions "
                f"({SETTING} in {partitions.source})"
            )
            continue
        if not warehouse_built:
            # Not recorded in the cursor: it is requested on the tick after the
            # warehouse's first build.
            scan.waiting += 1
            continue
        for key in covered:
            target = fault_keys if fault else new_keys
            target[key] = ",".join(filter(None, [target.get(key), stamp]))
        table_seen[partition_key] = stamp
    return new_keys, fault_keys


def _scan_daily(
    scan: LandingScan,
    contract: SourceContract,
    landing_dir: Path,
    warehouse_built: bool,
    in_partitions: Callable[[str], bool],
    keys_for: KeysFor,
) -> None:
    new_keys, fault_keys = _new_daily_keys(
        scan, contract, landing_dir, warehouse_built, in_partitions, keys_for
    )
    # Consecutive days go in one run (the daily assets load a range in one run and one
    # dbt invocation), so a first start with 90 days of files is one run, not 180. A faulty
    # day is a run of its own: its failure holds up no other day.
    ranges = [(r, new_keys) for r in consecutive_ranges(list(new_keys), contract.partitions)]
    ranges += [((k, k), fault_keys) for k in fault_keys]
    for (first, last), keys in ranges:
        stamps = ",".join(dict.fromkeys(keys[k] for k in sorted(keys) if first <= k <= last))
        scan.daily_ranges.setdefault((first, last), []).append((contract.table, stamps))


def scan_landing(
    cursor: str | None,
    contracts: Sequence[SourceContract],
    landing_dir: Path,
    warehouse_built: bool,
    in_partitions: Callable[[str], bool],
    now: float | None = None,
    keys_for: KeysFor = lambda contract, key: [],
) -> LandingScan:
    """What changed in `landing_dir` since the sensor's `cursor`, at `now` (the clock's time).

    Daily files wait while `warehouse_built` is false, because the daily facts select from the
    unpartitioned warehouse; `in_partitions` says whether a day is a daily partition, and
    `keys_for` which partitions the file of another delivery covers."""
    scan = LandingScan(seen=json.loads(cursor) if cursor else {})
    if now is not None:
        scan.now = now
    for contract in contracts:
        if contract.snapshot:
            _scan_snapshot(scan, contract, landing_dir)
    for table, stamp in scan.snapshot_changes:
        scan.seen.setdefault(table, {})["newest"] = stamp
    for contract in contracts:
        if not contract.snapshot:
            _scan_daily(scan, contract, landing_dir, warehouse_built, in_partitions, keys_for)
    return scan
