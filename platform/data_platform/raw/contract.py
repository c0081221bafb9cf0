"""The raw schema contract, read from the dbt sources yml files.

The contract is declared once, in `dbt_project/models/staging/<source>/_<source>__sources.yml`:
each raw table's columns with their `data_type`, and their dbt tests. Ingestion enforces every
declared test row by row before a row reaches the `raw` schema (`ROW_TESTS`), and dbt runs the
same tests on the loaded tables, so they never fail on rows ingestion let through. A test
ingestion cannot enforce is refused when the contract is read (`ContractError`, one line naming
the source, table, column and test): the raw assets are built from the contract, so the code
location does not load with a rule that would be skipped. The table-level `meta.headwater`
block says where the landing files are, how they are partitioned and (`file:`) how to read them.

No Dagster import here: this is plain data read from yml, unit-tested on its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_platform.raw.contract_rules import (
    ContractError,
    FileDialect,
    RowTest,
    check_sql,
    declared_tests,
    file_dialect,
    refuse,
    relationship_parent,
    row_test,
)
from headwater_core.names import raw_key
from headwater_core.partition_settings import PartitionSettings, read_partition_settings

__all__ = ["ColumnContract", "ContractError", "FileDialect", "RowTest", "SourceContract"]

# Columns ingestion adds to every raw table. dbt models may use them; the contract never lists them.
LINEAGE_COLUMNS: dict[str, str] = {
    "_source_file": "varchar",
    "_source_row": "bigint",
    "_partition_date": "date",
    "_loaded_at": "timestamp",
}

# How a table's landing files arrive (`meta.headwater.delivery`); `snapshot: true` = `snapshot`.
DELIVERIES = ("hour", "day", "month", "span", "snapshot")


@dataclass(frozen=True)
class ColumnContract:
    """One declared column of a raw table and the rules every landed value must pass."""

    name: str
    data_type: str
    required: bool = False
    unique: bool = False
    accepted_values: tuple[str, ...] | None = None
    description: str = ""
    tests: tuple[RowTest, ...] = ()
    """The column's other declared tests (`RowTest`)."""


@dataclass(frozen=True)
class DatabaseSource:
    """Where a raw table served from a database is read (`meta.headwater.database`)."""

    connection_env: str
    """The environment variable holding the SQLAlchemy URL, read when a run loads the table."""
    table: str
    """The source table, schema-qualified (`public.rentals`)."""
    cursor_column: str
    """Only rows whose value here is above the last one loaded are read (incremental)."""


def _database_from_yml(
    raw: dict[str, Any] | None, columns: tuple[str, ...], where: str
) -> DatabaseSource | None:
    if raw is None:
        return None
    missing = [k for k in ("connection_env", "table", "cursor_column") if not raw.get(k)]
    if missing:
        raise ValueError(f"{where}: meta.headwater.database lacks {missing}")
    parts = str(raw["table"]).split(".")
    if len(parts) != 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"{where}: database.table {raw['table']!r} is not `schema.table`")
    if raw["cursor_column"] not in columns:
        raise ValueError(f"{where}: database.cursor_column {raw['cursor_column']!r} is undeclared")
    return DatabaseSource(str(raw["connection_env"]), str(raw["table"]), raw["cursor_column"])


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
    delivery: str = "day"
    """How files arrive: one per `hour`, `day` or `month` (the placeholder in `landing_pattern`
    says which), a `span` file covering any time (rows placed by `partitioned_by`), or a
    `snapshot`."""
    allow_empty: bool = False
    """Whether a file with a header and no rows is a valid delivery (a quiet day)."""
    max_rejected_share: float = 0.01
    settle_seconds: float = 5.0
    """How long a landing file must be unchanged (size and mtime) before it is loaded: a file
    still being written is left for a later sensor tick, and refused by the raw asset."""
    description: str = ""
    freshness: dict[str, float] | None = None
    """`{warn_after_hours, fail_after_hours}`: how stale the raw table may get."""
    database: DatabaseSource | None = None
    """Set for a table read from a database instead of landing files."""
    file: FileDialect = field(default_factory=FileDialect)
    """How the landing files are read (`meta.headwater.file`)."""
    table_tests: tuple[RowTest, ...] = ()
    """Table-level tests (`expression_is_true`, `unique_combination_of_columns`)."""
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

    @property
    def row_tests(self) -> tuple[RowTest, ...]:
        """Every `RowTest` of the table, column-level then table-level."""
        return (*(t for c in self.columns for t in c.tests), *self.table_tests)

    def column(self, name: str) -> ColumnContract:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.qualified_name} has no column {name!r}")


def _column_from_yml(raw: dict[str, Any], where: str) -> ColumnContract:
    if "data_type" not in raw:
        raise ContractError(f"{where}: column {raw.get('name')!r} declares no data_type")
    required = unique = False
    accepted: tuple[str, ...] | None = None
    tests: list[RowTest] = []
    declared = raw.get("data_tests", raw.get("tests", []))
    for name, args in declared_tests(declared, raw["name"], where):
        if name == "not_null":
            required = True
        elif name == "unique":
            unique = True
        elif name == "accepted_values":
            if not isinstance(args.get("values"), list):
                raise refuse(where, raw["name"], name, "it needs the argument `values` (a list)")
            accepted = tuple(str(v) for v in args["values"])
        else:
            tests.append(row_test(name, args, raw["name"], where))
    return ColumnContract(
        name=raw["name"],
        data_type=str(raw["data_type"]).lower(),
        # A unique key is always required: a null key cannot be deduplicated or joined.
        required=required or unique,
        unique=unique,
        accepted_values=accepted,
        description=raw.get("description", ""),
        tests=tuple(tests),
    )


def _table_tests(table: dict[str, Any], columns: tuple[str, ...], where: str) -> tuple:
    tests = []
    for name, args in declared_tests(table.get("data_tests", table.get("tests")), None, where):
        if name not in ("expression_is_true", "unique_combination_of_columns"):
            raise refuse(where, None, name, "it is a column test")
        test = row_test(name, args, None, where)
        unknown = [c for c in test.arg("combination_of_columns") or () if c not in columns]
        if unknown:
            raise refuse(where, None, name, f"columns {unknown} are not declared")
        tests.append(test)
    return tuple(tests)


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
            delivery = str(
                headwater.get("delivery", "snapshot" if headwater.get("snapshot") else "day")
            )
            if delivery not in DELIVERIES:
                raise ValueError(f"{where}: delivery {delivery!r} is not one of {list(DELIVERIES)}")
            columns = tuple(_column_from_yml(c, where) for c in table.get("columns", []))
            database = _database_from_yml(
                headwater.get("database"), tuple(c.name for c in columns), where
            )
            found.append(
                SourceContract(
                    source_name=source["name"],
                    table=table["name"],
                    schema=source.get("schema", source["name"]),
                    asset_key=tuple(asset_key),
                    landing_pattern="" if database else headwater["landing_pattern"],
                    columns=columns,
                    partition_column=headwater.get("partitioned_by"),
                    snapshot=delivery == "snapshot",
                    delivery=delivery,
                    allow_empty=bool(headwater.get("allow_empty", False)),
                    max_rejected_share=float(headwater.get("max_rejected_share", 0.01)),
                    settle_seconds=float(headwater.get("settle_seconds", 5.0)),
                    freshness=headwater.get("freshness"),
                    description=" ".join(str(table.get("description", "")).split()),
                    database=database,
                    file=file_dialect(headwater.get("file"), where),
                    table_tests=_table_tests(table, tuple(c.name for c in columns), where),
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
            contracts[contract.table] = dataclasses.replace(contract, partitions=partitions)
    resolved = {name: _with_parents(c, contracts) for name, c in contracts.items()}
    for contract in resolved.values():
        check_sql(contract)
    return resolved


def _with_parents(contract: SourceContract, contracts: dict[str, SourceContract]) -> SourceContract:
    """The contract with each `relationships` test's parent resolved: a declared column of a
    raw table with a contract, since that loaded table is what ingestion checks values against."""
    tables = {(c.source_name, c.table): c for c in contracts.values()}
    columns = []
    for column in contract.columns:
        tests = []
        for test in column.tests:
            if test.name == "relationships":
                parent = tables.get(relationship_parent(test))
                if parent is None or test.arg("field") not in parent.column_names:
                    raise refuse(
                        f"source {contract.source_name}.{contract.table}",
                        test.column,
                        test.name,
                        f"{test.arg('to')}.{test.arg('field')} is not a column of a raw table "
                        "with a contract",
                    )
                test = dataclasses.replace(test, parent=parent)
            tests.append(test)
        columns.append(dataclasses.replace(column, tests=tuple(tests)))
    return dataclasses.replace(contract, columns=tuple(columns))
