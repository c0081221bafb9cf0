"""Finding landing files: which file of the landing folder holds which partition of a raw table.

A file's partition is the date (YYYY-MM-DD) in its name, matched against the contract's
`landing_pattern`. No Dagster import here: the landing sensor, the raw assets and the benchmark
floor all find files with these functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from data_platform.raw.contract import SourceContract

_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
_FORMATS = (".csv", ".parquet")


class LandingFileError(Exception):
    """A landing file that cannot be loaded at all. The message names the file and the fault."""


def _landing_glob(contract: SourceContract) -> tuple[str, str]:
    folder, _, name = contract.landing_pattern.rpartition("/")
    return folder, name.replace("{date}", "*")


def find_landing_files(contract: SourceContract, landing_dir: Path) -> dict[str, Path]:
    """The table's landing files by the date in their name (YYYY-MM-DD)."""
    folder, pattern = _landing_glob(contract)
    prefix = pattern.split("*", 1)[0]
    found: dict[str, Path] = {}
    for path in sorted((landing_dir / folder).glob(pattern)):
        # Skip temp files of a writer still at work, and anything that is not data.
        if path.name.startswith(".") or path.suffix not in _FORMATS:
            continue
        match = _DATE_IN_NAME.search(path.name[len(prefix) :])
        if not match:
            continue
        key = match.group(1)
        if key in found:
            raise LandingFileError(
                f"{path}: a second file for {contract.table} on {key} (also {found[key].name}); "
                "remove one of them"
            )
        found[key] = path
    return found


def landing_file_for(contract: SourceContract, landing_dir: Path, partition_key: str) -> Path:
    """The one landing file of a daily partition, or a clear error."""
    files = find_landing_files(contract, landing_dir)
    if partition_key not in files:
        expected = landing_dir / contract.landing_pattern.replace("{date}", partition_key)
        raise LandingFileError(
            f"no landing file for {contract.table} partition {partition_key}: expected "
            f"{expected.with_suffix('')}.csv or .parquet"
        )
    return files[partition_key]


def newest_snapshot_file(contract: SourceContract, landing_dir: Path) -> tuple[str, Path]:
    """The newest snapshot file of a snapshot table and its date."""
    files = find_landing_files(contract, landing_dir)
    if not files:
        folder, pattern = _landing_glob(contract)
        raise LandingFileError(f"no {contract.table} snapshot in {landing_dir / folder}/{pattern}")
    key = max(files)
    return key, files[key]


def files_to_load(
    contract: SourceContract, landing_dir: Path, partition_keys: Sequence[str]
) -> list[tuple[str, Path]]:
    """The (partition key, file) pairs one load of the table reads: the file of each daily
    partition in `partition_keys`, or, for a snapshot table, its newest file alone."""
    if contract.snapshot:
        return [newest_snapshot_file(contract, landing_dir)]
    return [(key, landing_file_for(contract, landing_dir, key)) for key in partition_keys]
