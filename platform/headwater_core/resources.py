"""The platform's storage as Dagster resources: the warehouse file, which both code locations
read and write, and the landing folder the raw assets load from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from headwater_core.config import default_duckdb_path, default_landing_dir


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file that holds the `raw` schema and every dbt layer.

    `path` empty means $HEADWATER_DUCKDB_PATH, else `<state>/warehouse.duckdb`, the same default
    dbt's profiles.yml uses, so Python and dbt always write one file.
    """

    path: str = ""

    def resolved_path(self) -> Path:
        return Path(self.path) if self.path else default_duckdb_path()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.resolved_path()
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()


class LandingZone(dg.ConfigurableResource):
    """The folder source systems deliver their export files into.

    `path` empty means $HEADWATER_LANDING_DIR, else `<state>/landing`.
    """

    path: str = ""

    def resolved_path(self) -> Path:
        return Path(self.path) if self.path else default_landing_dir()
