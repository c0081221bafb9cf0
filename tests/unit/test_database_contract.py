"""The `meta.headwater.database` block of a contract: a raw table served from a database."""

from pathlib import Path

import pytest

from data_platform.raw.contract import DatabaseSource, contracts_from_yml
from data_platform.raw.database import DatabaseSourceError, connection_url, location
from headwater_core.config import environ

YML = """
sources:
  - name: shop
    schema: raw
    tables:
      - name: orders
        config:
          meta:
            headwater:
              database: {database}
              partitioned_by: ordered_at
        columns:
          - {{name: order_id, data_type: integer, data_tests: [unique]}}
          - {{name: ordered_at, data_type: timestamp}}
          - {{name: updated_at, data_type: timestamp}}
"""


def _contracts(tmp_path: Path, database: str):
    path = tmp_path / "_shop__sources.yml"
    path.write_text(YML.format(database=database))
    return contracts_from_yml(path)


def test_a_database_block_needs_no_landing_pattern(tmp_path: Path):
    (contract,) = _contracts(
        tmp_path, "{connection_env: SHOP_URL, table: public.orders, cursor_column: updated_at}"
    )
    assert contract.database == DatabaseSource("SHOP_URL", "public.orders", "updated_at")
    assert contract.partition_column == "ordered_at" and contract.landing_pattern == ""


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ("{connection_env: SHOP_URL, table: public.orders}", "lacks ['cursor_column']"),
        (
            "{connection_env: SHOP_URL, table: orders, cursor_column: updated_at}",
            "'orders' is not `schema.table`",
        ),
        (
            "{connection_env: SHOP_URL, table: public.orders, cursor_column: changed}",
            "'changed' is undeclared",
        ),
    ],
)
def test_a_database_block_is_checked_when_read(tmp_path: Path, database: str, message: str):
    with pytest.raises(ValueError, match="source shop.orders") as refused:
        _contracts(tmp_path, database)
    assert message in str(refused.value)


def test_the_location_keeps_no_credentials(tmp_path: Path):
    (contract,) = _contracts(
        tmp_path, "{connection_env: SHOP_URL, table: public.orders, cursor_column: updated_at}"
    )
    url = "postgresql+psycopg2://loader:s3cret@db.internal:5432/shop"
    assert location(url, contract) == "postgresql://db.internal:5432/shop/public.orders"


def test_an_unset_connection_variable_is_named(tmp_path: Path):
    (contract,) = _contracts(
        tmp_path, "{connection_env: H_DBSRC_UNSET, table: public.orders, cursor_column: updated_at}"
    )
    with environ({"H_DBSRC_UNSET": ""}), pytest.raises(DatabaseSourceError) as refused:
        connection_url(contract)
    assert "raw.orders: environment variable H_DBSRC_UNSET is not set" in str(refused.value)
