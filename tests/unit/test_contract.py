"""The raw contract is read from the dbt sources yml: one declaration, two enforcers."""

from pathlib import Path

import pytest

from data_platform.raw.contract import (
    ContractError,
    FileDialect,
    contracts_from_yml,
    load_contracts,
)
from headwater_core.config import dbt_project_dir


def test_every_raw_table_has_a_contract():
    contracts = load_contracts(dbt_project_dir())
    assert set(contracts) == {"transactions", "chargebacks", "customers", "merchants"}
    for c in contracts.values():
        assert c.schema == "raw"
        assert c.asset_key == ("raw", c.table)
        assert c.unique_columns, f"{c.table} declares no unique key"


def test_rules_come_from_the_dbt_tests():
    transactions = load_contracts(dbt_project_dir())["transactions"]
    assert transactions.partition_column == "transacted_at"
    assert not transactions.snapshot and not transactions.allow_empty
    key = transactions.column("transaction_id")
    assert key.unique and key.required and key.data_type == "varchar"
    assert transactions.column("amount").data_type == "decimal(12, 2)"
    assert transactions.column("channel").accepted_values == ("in_store", "online", "contactless")
    customers = load_contracts(dbt_project_dir())["customers"]
    assert customers.snapshot and not customers.column("birth_year").required


def test_a_column_without_type_is_refused(tmp_path: Path):
    yml = tmp_path / "_x__sources.yml"
    yml.write_text(
        "sources:\n  - name: x\n    schema: raw\n    tables:\n      - name: t\n"
        "        config: {meta: {headwater: {landing_pattern: 't/t_{date}.*'}}}\n"
        "        columns:\n          - name: id\n"
    )
    with pytest.raises(ValueError, match="column 'id' declares no data_type"):
        contracts_from_yml(yml)


def test_tables_without_headwater_meta_are_not_raw_contracts(tmp_path: Path):
    yml = tmp_path / "_x__sources.yml"
    yml.write_text("sources:\n  - name: x\n    tables:\n      - name: t\n")
    assert contracts_from_yml(yml) == []


def _with_file(tmp_path: Path, file: str) -> Path:
    yml = tmp_path / "_x__sources.yml"
    yml.write_text(
        "sources:\n  - name: x\n    schema: raw\n    tables:\n      - name: t\n"
        "        config: {meta: {headwater: {landing_pattern: 't/t_{date}.*', file: FILE}}}\n"
        "        columns:\n          - {name: id, data_type: varchar}\n".replace("FILE", file)
    )
    return yml


def test_the_file_dialect_is_read_from_the_contract(tmp_path: Path):
    yml = _with_file(
        tmp_path,
        "{delimiter: ';', encoding: latin-1, header: false, null_values: ['', NA], "
        "compression: gzip, escape: '\\'}",
    )
    (contract,) = contracts_from_yml(yml)
    assert contract.file == FileDialect(
        delimiter=";",
        encoding="latin-1",
        header=False,
        null_values=("", "NA"),
        compression="gzip",
        escape="\\",
    )
    assert load_contracts(dbt_project_dir())["transactions"].file == FileDialect()


@pytest.mark.parametrize(
    "file, message",
    [
        ("{separator: ';'}", r"meta.headwater.file has unknown keys \['separator'\]"),
        ("{encoding: klingon}", "encoding 'klingon' is not a known codec"),
        ("{delimiter: '::'}", "delimiter must be one character"),
        ("{compression: zip}", "compression must be auto|gzip|none"),
        ("{format: xlsx}", "format must be csv or parquet"),
    ],
)
def test_a_file_dialect_ingestion_cannot_read_is_refused(tmp_path: Path, file, message):
    with pytest.raises(ContractError, match=message):
        contracts_from_yml(_with_file(tmp_path, file))
