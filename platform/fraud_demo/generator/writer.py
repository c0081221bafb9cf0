"""Where landing files go and how they are written: atomically, as CSV or Parquet."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

FORMATS = ("csv", "parquet")


def landing_path(landing_dir: Path, kind: str, day: date, file_format: str) -> Path:
    """`<landing_dir>/<kind>/<kind>_YYYY-MM-DD.<csv|parquet>`."""
    return Path(landing_dir) / kind / f"{kind}_{day:%Y-%m-%d}.{file_format}"


def write_table(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` in the format its suffix names, replacing any older file.

    A file of the same day in the other format (left by a run with another seed) is removed,
    so a day never has two files.
    """
    file_format = path.suffix.lstrip(".")
    if file_format == "csv":
        _atomically(path, lambda tmp: pa_csv.write_csv(table, tmp))
    elif file_format == "parquet":
        _atomically(path, lambda tmp: pq.write_table(table, tmp))
    else:
        raise ValueError(f"unsupported landing format: {path.name}")
    for other in FORMATS:
        sibling = path.with_suffix(f".{other}")
        if other != file_format and sibling.exists():
            sibling.unlink()


def _atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a hidden temporary file in the same folder, then rename it into place.

    A watcher (a Dagster sensor) then sees either no file or a complete one. The temporary name
    starts with a dot so it never matches a `transactions_*` landing pattern.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
