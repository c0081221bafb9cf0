"""Finding landing files: which file of the landing folder holds which partition of a raw table.

A file's partition is the key in its name, matched against the contract's `landing_pattern`:
its date (YYYY-MM-DD), at the project's grain (a monthly partition's file carries the month's
first day; an hourly one's also the hour). A day that cannot be loaded as it is, whatever its
content, is a fault of that day alone (`LandingFault`): two files for one day, or a symbolic
link out of the landing folder (never read). A file is loaded only once it is stable:
unchanged (size and modification time) for the contract's `settle_seconds`. No Dagster import
here: the landing sensor, the raw assets and the benchmark floor all find files with these
functions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data_platform.raw.contract import SourceContract

_FORMATS = (".csv", ".parquet")


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


def _landing_glob(contract: SourceContract) -> tuple[str, str]:
    folder, _, name = contract.landing_pattern.rpartition("/")
    return folder, name.replace("{date}", "*")


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


def list_landing_files(contract: SourceContract, landing_dir: Path) -> LandingFiles:
    """The table's landing files by the date in their name (YYYY-MM-DD), and its faulty days."""
    folder, pattern = _landing_glob(contract)
    prefix = pattern.split("*", 1)[0]
    found = LandingFiles()
    for path in sorted((landing_dir / folder).glob(pattern)):
        # Skip temp files of a writer still at work, and anything that is not data.
        if path.name.startswith(".") or path.suffix not in _FORMATS:
            continue
        key = contract.partitions.key_in_name(path.name[len(prefix) :])
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
    expected = landing_dir / contract.landing_pattern.replace("{date}", partition_key)
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
