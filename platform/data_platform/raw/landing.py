"""Finding landing files: which file of the landing folder holds which partition of a raw table.

A file's key is the time in its name, matched against the contract's `landing_pattern` by the
placeholder of its delivery: `{hour}` (YYYY-MM-DDTHH), `{date}` (YYYY-MM-DD, also a snapshot's
date) or `{month}` (YYYY-MM); the key is the hour, day or month the file covers. A `span`
delivery has no placeholder: every file matching the pattern (e.g. `bike/hour*.csv`) may hold
rows of any partition, keyed by its name. A day file of a daily table is its partition
(`plan_load`); any other file is read once per run and its rows placed into the run's partitions
by the partition column (`plan_spread`). A key that cannot be loaded as it is, whatever its
content, is a fault of its partitions alone (`LandingFault`): two files for one key, or a
symbolic link out of the landing folder (never read). A file is loaded only once it is stable:
unchanged (size and modification time) for the contract's `settle_seconds`. No Dagster import
here: the landing sensor, the raw assets and the benchmark floor all find files with these
functions.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from data_platform.raw.contract import SourceContract

# Per dated delivery: its placeholder in `landing_pattern`, the text it stands for in a file
# name, and that text's format.
_KEYS = {
    "hour": ("{hour}", re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}"), "%Y-%m-%dT%H"),
    "day": ("{date}", re.compile(r"\d{4}-\d{2}-\d{2}"), "%Y-%m-%d"),
    "month": ("{month}", re.compile(r"\d{4}-\d{2}"), "%Y-%m"),
    "snapshot": ("{date}", re.compile(r"\d{4}-\d{2}-\d{2}"), "%Y-%m-%d"),
}
_FORMATS = (".csv", ".parquet", ".gz")


class LandingFileError(Exception):
    """A landing file that cannot be loaded at all. The message names the file and the fault."""


@dataclass(frozen=True)
class LandingFault:
    """A day whose landing file cannot be loaded as it is: the file the quarantine names (the
    first, if there are two) and the message, which names every file involved."""

    partition_key: str
    path: Path
    message: str


@dataclass
class LandingFiles:
    """A table's landing files: one loadable file per day, and the days that are faults."""

    files: dict[str, Path] = field(default_factory=dict)
    faults: dict[str, LandingFault] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadPlan:
    """What one load of a table reads (partition key, file), and the days it cannot load."""

    files: list[tuple[str, Path]]
    faults: list[LandingFault]


def _placeholder(contract: SourceContract) -> str | None:
    return None if contract.delivery == "span" else _KEYS[contract.delivery][0]


def _landing_glob(contract: SourceContract) -> tuple[str, str]:
    folder, _, name = contract.landing_pattern.rpartition("/")
    placeholder = _placeholder(contract)
    return folder, name.replace(placeholder, "*") if placeholder else name


def landing_path(contract: SourceContract, landing_dir: Path, key: str) -> Path:
    """The landing path the pattern gives for a file key (its extension left open)."""
    placeholder = _placeholder(contract) or "*"
    return landing_dir / contract.landing_pattern.replace(placeholder, key)


def file_window(contract: SourceContract, key: str) -> tuple[datetime, datetime] | None:
    """The time a dated file covers, [start, end) in UTC; None for a span file (any time)."""
    if contract.delivery == "span":
        return None
    start = datetime.strptime(key, _KEYS[contract.delivery][2])
    if contract.delivery == "hour":
        return start, start + timedelta(hours=1)
    if contract.delivery == "month":
        return start, (start + timedelta(days=32)).replace(day=1)
    return start, start + timedelta(days=1)


def _key_in_name(contract: SourceContract, name: str, prefix: str) -> str | None:
    """A file name's key: its name for a span file, else the time in it after the pattern's
    prefix, if it is one."""
    if contract.delivery == "span":
        return name
    _, pattern, fmt = _KEYS[contract.delivery]
    match = pattern.search(name[len(prefix) :])
    if not match:
        return None
    try:
        datetime.strptime(match.group(0), fmt)
    except ValueError:
        return None
    return match.group(0)


def _outside(path: Path, landing_dir: Path) -> str | None:
    """Where `path` really leads, if that is outside the landing folder (a symbolic link out)."""
    real = Path(os.path.realpath(path))
    if real.is_relative_to(Path(os.path.realpath(landing_dir))):
        return None
    return str(real)


def _add(found: LandingFiles, contract: SourceContract, key: str, path: Path) -> None:
    if key in found.faults:
        return  # already a fault: a third file changes nothing
    if key in found.files:
        other = found.files.pop(key)
        message = (
            f"{path}: a second file for {contract.table} on {key} (also {other}); "
            "remove one of them"
        )
        found.faults[key] = LandingFault(key, other, message)
    else:
        found.files[key] = path


def file_key(contract: SourceContract, path: Path) -> str | None:
    """A landing file's key (the time in its name; a span file's name), if it has one."""
    prefix = _landing_glob(contract)[1].split("*", 1)[0]
    return _key_in_name(contract, path.name, prefix)


def list_landing_files(contract: SourceContract, landing_dir: Path) -> LandingFiles:
    """The table's landing files by their key (the time in their name, a span file's name),
    and its faulty keys."""
    folder, pattern = _landing_glob(contract)
    prefix = pattern.split("*", 1)[0]
    found = LandingFiles()
    for path in sorted((landing_dir / folder).glob(pattern)):
        # Skip temp files of a writer still at work, and anything that is not data.
        if path.name.startswith(".") or path.suffix not in _FORMATS:
            continue
        key = _key_in_name(contract, path.name, prefix)
        if key is None:
            continue
        target = _outside(path, landing_dir)
        if target is not None:
            message = (
                f"{path}: a symbolic link to {target}, outside the landing folder "
                f"{landing_dir}; not read"
            )
            found.files.pop(key, None)
            found.faults[key] = LandingFault(key, path, message)
            continue
        _add(found, contract, key, path)
    return found


def find_landing_files(contract: SourceContract, landing_dir: Path) -> dict[str, Path]:
    """The table's landing files by the date in their name (YYYY-MM-DD); a faulty day raises."""
    found = list_landing_files(contract, landing_dir)
    if found.faults:
        raise LandingFileError(found.faults[min(found.faults)].message)
    return found.files


def _missing(contract: SourceContract, landing_dir: Path, partition_key: str) -> LandingFileError:
    expected = landing_path(contract, landing_dir, partition_key)
    return LandingFileError(
        f"no landing file for {contract.table} partition {partition_key}: expected "
        f"{expected.with_suffix('')}.csv or .parquet"
    )


def landing_file_for(contract: SourceContract, landing_dir: Path, partition_key: str) -> Path:
    """The one landing file of a daily partition, or a clear error."""
    found = list_landing_files(contract, landing_dir)
    if partition_key in found.faults:
        raise LandingFileError(found.faults[partition_key].message)
    if partition_key not in found.files:
        raise _missing(contract, landing_dir, partition_key)
    return found.files[partition_key]


def newest_snapshot_file(contract: SourceContract, landing_dir: Path) -> tuple[str, Path]:
    """The newest snapshot file of a snapshot table and its date."""
    plan = plan_load(contract, landing_dir, ())
    if plan.faults:
        raise LandingFileError(plan.faults[0].message)
    return plan.files[0]


def plan_load(
    contract: SourceContract, landing_dir: Path, partition_keys: Sequence[str]
) -> LoadPlan:
    """The (partition key, file) pairs one load of the table reads, and the days among them
    that are faults: each daily partition in `partition_keys`, or, for a snapshot table, its
    newest day alone. A day with no file at all raises `LandingFileError`."""
    found = list_landing_files(contract, landing_dir)
    if contract.snapshot:
        days = found.files.keys() | found.faults.keys()
        if not days:
            folder, pattern = _landing_glob(contract)
            raise LandingFileError(
                f"no {contract.table} snapshot in {landing_dir / folder}/{pattern}"
            )
        partition_keys = [max(days)]
    files: list[tuple[str, Path]] = []
    faults: list[LandingFault] = []
    for key in partition_keys:
        if key in found.faults:
            faults.append(found.faults[key])
        elif key in found.files:
            files.append((key, found.files[key]))
        else:
            raise _missing(contract, landing_dir, key)
    return LoadPlan(files, faults)


@dataclass(frozen=True)
class PartitionWindow:
    """A partition of the run: its key and its time, [start, end) in UTC (naive)."""

    key: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SpreadPlan:
    """What one load of a table whose files are not its partitions reads: each file once,
    with the run's partitions it may hold rows of, and each partition that cannot load."""

    covers: dict[Path, list[str]]
    faults: list[LandingFault]


def covered_keys(
    span: tuple[datetime, datetime] | None, windows: Sequence[PartitionWindow]
) -> list[str]:
    """The partitions a file's time (None: any) overlaps."""
    return [w.key for w in windows if span is None or (span[0] < w.end and w.start < span[1])]


def one_file_per_partition(contract: SourceContract, windows: Sequence[PartitionWindow]) -> bool:
    """Whether each partition of the run is exactly one day file (`plan_load`'s case)."""
    return contract.delivery == "day" and all(
        w.end - w.start == timedelta(days=1) and w.start.time() == datetime.min.time()
        for w in windows
    )


def plan_spread(
    contract: SourceContract, landing_dir: Path, windows: Sequence[PartitionWindow]
) -> SpreadPlan:
    """The files a range of partitions is loaded from: a dated file covering part of a
    partition of the range, every span file. A faulty file fails every partition of the range
    it covers, and a partition no dated file covers is a fault of its own; a span delivery
    with no file raises `LandingFileError`."""
    if not contract.partition_column:
        raise LandingFileError(
            f"{contract.table}: a {contract.delivery} delivery needs `partitioned_by`, the "
            "column that places each row into its partition"
        )
    found = list_landing_files(contract, landing_dir)
    if contract.delivery == "span" and not (found.files or found.faults):
        folder, pattern = _landing_glob(contract)
        raise LandingFileError(f"no {contract.table} file in {landing_dir / folder}/{pattern}")
    keys = [w.key for w in windows]
    covers: dict[Path, list[str]] = {}
    faults: list[LandingFault] = []
    covered: set[str] = set()
    for key in sorted(found.files.keys() | found.faults.keys()):
        span = file_window(contract, key)
        inside = covered_keys(span, windows)
        covered.update(inside)
        if key in found.faults:
            fault = found.faults[key]
            faults.extend(LandingFault(k, fault.path, fault.message) for k in inside)
        elif inside:
            covers[found.files[key]] = inside
    for key in keys:
        if key not in covered:
            expected = landing_path(contract, landing_dir, "*")
            faults.append(
                LandingFault(
                    key,
                    expected,
                    f"no landing file for {contract.table} covers partition {key}: expected "
                    f"a {contract.delivery} file {expected}",
                )
            )
    return SpreadPlan(covers, faults)


def files_to_load(
    contract: SourceContract, landing_dir: Path, partition_keys: Sequence[str]
) -> list[tuple[str, Path]]:
    """The (partition key, file) pairs one load of the table reads: the file of each daily
    partition in `partition_keys`, or, for a snapshot table, its newest file alone. A faulty
    day raises `LandingFileError`; `plan_load` keeps the other days."""
    plan = plan_load(contract, landing_dir, partition_keys)
    if plan.faults:
        raise LandingFileError(plan.faults[0].message)
    return plan.files


# --- stability -------------------------------------------------------------------------------


def _stat(path: Path) -> os.stat_result | None:
    """The file's status; a link that leads nowhere by the link itself; None if it is gone."""
    try:
        return path.stat()
    except FileNotFoundError:
        try:
            return path.lstat()
        except FileNotFoundError:
            return None


def file_stamp(path: Path) -> str:
    """A file's modification time and size: it changed if this changed."""
    stat = _stat(path)
    return f"{stat.st_mtime_ns}:{stat.st_size}" if stat else "gone"


def settling(path: Path, settle_seconds: float, now: float | None = None) -> bool:
    """Whether `path` was modified less than `settle_seconds` ago (it may still be written)."""
    stat = _stat(path)
    now = time.time() if now is None else now
    return stat is not None and now - stat.st_mtime < settle_seconds


def wait_until_settled(
    files: Sequence[tuple[str, Path]],
    settle_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[tuple[str, Path]], list[LandingFault]]:
    """The files that are stable, and a fault for each one still being written.

    A file modified less than `settle_seconds` ago is watched until it is that old (one wait
    for all, at most `settle_seconds`): if its size or modification time changed meanwhile, a
    writer is still at work and the file is refused. A file written atomically (a temporary
    file renamed into place) only waits."""
    stamps = {path: file_stamp(path) for _, path in files}
    now = time.time()
    ages = [now - stat.st_mtime for _, path in files if (stat := _stat(path))]
    wait = min(settle_seconds, max((settle_seconds - age for age in ages), default=0.0))
    if wait <= 0:
        return list(files), []
    sleep(wait)
    stable: list[tuple[str, Path]] = []
    faults: list[LandingFault] = []
    for key, path in files:
        if file_stamp(path) == stamps[path]:
            stable.append((key, path))
            continue
        faults.append(
            LandingFault(
                key,
                path,
                f"{path}: still being written (its size or modification time changed within "
                f"the {settle_seconds:g} s settle interval); it is loaded once unchanged for "
                f"{settle_seconds:g} s",
            )
        )
    return stable, faults
