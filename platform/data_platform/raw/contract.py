"""The raw schema contract, read from the dbt sources yml files.

The contract is declared once, in `dbt_project/models/staging/<source>/_<source>__sources.yml`:
each raw table's columns with their `data_type`, and the dbt tests `not_null`, `unique` and
`accepted_values`. Ingestion enforces exactly those rules row by row before a row reaches the
`raw` schema, and dbt runs the same tests on the loaded tables. The table-level
`meta.headwater` block says where the landing files are and how they are partitioned.

No Dagster import here: this is plain data read from yml, unit-tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from headwater_core.names import raw_key
from headwater_core.partition_settings import PartitionSettings, read_partition_settings

# Columns ingestion adds to every raw table. dbt models may use them; the contract never lists them.
LINEAGE_COLUMNS: dict[str, str] = {
    "_source_file": "varchar",
    "_source_row": "bigint",
    "_partition_date": "date",
    "_loaded_at": "timestamp",
}


@dataclass(frozen=True)
class ColumnContract:
    """One declared column of a raw table and the rules every landed value must pass."""

    name: str
    data_type: str
    required: bool = False
    unique: bool = False
    accepted_values: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class SourceContract:
    """A raw table: its columns, where its landing files are, and how it is loaded."""

    source_name: str
    """The dbt source the table belongs to (`payments`, `crm`, ...)."""
    table: str
    """The table name in the `raw` schema, and the second part of the Dagster asset key."""
    schema: str
    asset_key: tuple[str, ...]
    landing_pattern: str
    """Landing path relative to the landing folder, `{date}` standing for YYYY-MM-DD."""
    columns: tuple[ColumnContract, ...]
    partition_column: str | None = None
    """Timestamp column whose date must equal the file's date (daily-partitioned tables)."""
    snapshot: bool = False
    """A full snapshot: the newest file replaces the whole table."""
    allow_empty: bool = False
    """Whether a file with a header and no rows is a valid delivery (a quiet day)."""
    max_rejected_share: float = 0.01
    settle_seconds: float = 5.0
    """How long a landing file must be unchanged (size and mtime) before it is loaded: a file
    still being written is left for a later sensor tick, and refused by the raw asset."""
    description: str = ""
    freshness: dict[str, float] | None = None
    """`{warn_after_hours, fail_after_hours}`: how stale the raw table may get."""
    partitions: PartitionSettings = field(default_factory=PartitionSettings)
    """The project's time partitions (dbt_project.yml): a file's partition is one of them."""

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def unique_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.unique)

    def column(self, name: str) -> ColumnContract:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.qualified_name} has no column {name!r}")


def _test_name_and_args(test: Any) -> tuple[str, dict[str, Any]]:
    """A dbt data test is either a bare name or `{name: {arguments: {...}}}` (dbt >= 1.10)."""
    if isinstance(test, str):
        return test, {}
    ((name, body),) = test.items()
    body = body or {}
    return name, dict(body.get("arguments", body))


def _column_from_yml(raw: dict[str, Any], where: str) -> ColumnContract:
    if "data_type" not in raw:
        raise ValueError(f"{where}: column {raw.get('name')!r} declares no data_type")
    required = unique = False
    accepted: tuple[str, ...] | None = None
    for test in raw.get("data_tests", raw.get("tests", [])) or []:
        name, args = _test_name_and_args(test)
        if name == "not_null":
            required = True
        elif name == "unique":
            unique = True
        elif name == "accepted_values":
            accepted = tuple(str(v) for v in args["values"])
    return ColumnContract(
        name=raw["name"],
        data_type=str(raw["data_type"]).lower(),
        # A unique key is always required: a null key cannot be deduplicated or joined.
        required=required or unique,
        unique=unique,
        accepted_values=accepted,
        description=raw.get("description", ""),
    )


def contracts_from_yml(path: Path) -> list[SourceContract]:
    """Every raw table declared with a `meta.headwater` block in one sources yml file."""
    doc = yaml.safe_load(path.read_text()) or {}
    found: list[SourceContract] = []
    for source in doc.get("sources", []):
        for table in source.get("tables", []):
            config = table.get("config", {}) or {}
            meta = {**(table.get("meta") or {}), **(config.get("meta") or {})}
            headwater = meta.get("headwater")
            if not headwater:
                continue
            where = f"{path}: source {source['name']}.{table['name']}"
            asset_key = meta.get("dagster", {}).get("asset_key", raw_key(table["name"]))
            found.append(
                SourceContract(
                    source_name=source["name"],
                    table=table["name"],
                    schema=source.get("schema", source["name"]),
                    asset_key=tuple(asset_key),
                    landing_pattern=headwater["landing_pattern"],
                    columns=tuple(_column_from_yml(c, where) for c in table.get("columns", [])),
                    partition_column=headwater.get("partitioned_by"),
                    snapshot=bool(headwater.get("snapshot", False)),
                    allow_empty=bool(headwater.get("allow_empty", False)),
                    max_rejected_share=float(headwater.get("max_rejected_share", 0.01)),
                    settle_seconds=float(headwater.get("settle_seconds", 5.0)),
                    freshness=headwater.get("freshness"),
                    description=" ".join(str(table.get("description", "")).split()),
                )
            )
    return found


def load_contracts(dbt_project_dir: Path) -> dict[str, SourceContract]:
    """All raw contracts of the dbt project, keyed by raw table name."""
    contracts: dict[str, SourceContract] = {}
    partitions = read_partition_settings(dbt_project_dir)
    for path in sorted((dbt_project_dir / "models").rglob("*sources.yml")):
        for contract in contracts_from_yml(path):
            if contract.table in contracts:
                raise ValueError(f"{path}: raw table {contract.table!r} is declared twice")
            contracts[contract.table] = replace(contract, partitions=partitions)
    return contracts
