"""Raw tables served from PostgreSQL and MariaDB, loaded by dlt under the contract, against the
real servers (issue 14, item 6): bad rows quarantined naming the source table, the cursor value
and the column; only new rows read on the next run; a run with nothing new changes nothing; a
crash after the extract loses no row; hour.csv from a PostgreSQL table, every row accounted for.
"""

import time
from pathlib import Path

import dagster as dg
import pytest

from data_platform.raw.contract import contracts_from_yml
from data_platform.raw.database import dlt_pipeline, dlt_source
from data_platform.raw.database_assets import build_database_asset
from headwater_core.config import environ
from headwater_core.resources import Warehouse
from tests.conftest import query
from tests.databases import (
    HOUR_COLUMNS,
    execute,
    hour_csv_into_table,
    mariadb_database,
    postgres_database,
)

RENTALS_YML = """
sources:
  - name: shop
    schema: raw
    tables:
      - name: rentals
        config:
          meta:
            headwater:
              database:
                connection_env: H_DBSRC_TEST_URL
                table: {table}
                cursor_column: updated_at
              partitioned_by: started_at
              max_rejected_share: {share}
        columns:
          - name: rental_id
            data_type: integer
            data_tests: [unique]
          - name: station
            data_type: varchar
            data_tests: [not_null]
          - name: started_at
            data_type: timestamp
          - name: kind
            data_type: varchar
            data_tests:
              - accepted_values:
                  arguments:
                    values: [member, casual]
          - name: minutes
            data_type: integer
          - name: updated_at
            data_type: timestamp
"""

CREATE_RENTALS = (
    "create table {table} (rental_id integer, station varchar(20), started_at timestamp null, "
    "kind varchar(20), minutes varchar(20), updated_at timestamp not null)"
)
INSERT_RENTALS = (
    "insert into {table} values (:rental_id, :station, :started_at, :kind, :minutes, :updated_at)"
)


def _rental(rental_id, station, started_at, kind, minutes, second):
    updated_at = f"2025-01-05 00:00:{second:02d}"
    return dict(
        rental_id=rental_id,
        station=station,
        started_at=started_at,
        kind=kind,
        minutes=minutes,
        updated_at=updated_at,
    )


FIRST_BATCH = [
    _rental(1, "A", "2025-01-01 08:00:00", "member", "12", 1),
    _rental(2, "B", "2025-01-01 09:00:00", "casual", "30", 2),
    _rental(3, "A", "2025-01-02 10:00:00", "member", "7", 3),
    _rental(None, "C", "2025-01-02 11:00:00", "member", "5", 4),  # null key
    _rental(4, "B", "2025-01-02 12:00:00", "member", "abc", 5),  # text that is no integer
    _rental(2, "C", "2025-01-03 13:00:00", "casual", "9", 6),  # duplicate key
    _rental(5, "A", "2025-01-03 14:00:00", "tourist", "3", 7),  # not an accepted value
    _rental(6, "A", "2024-12-31 23:00:00", "member", "3", 8),  # before the partitions
    _rental(7, "C", "2025-01-03 15:00:00", "member", "4", 9),
]
SECOND_BATCH = [
    _rental(8, "A", "2025-01-03 16:00:00", "member", "11", 10),
    _rental(9, "B", "2025-01-04 08:00:00", "casual", "20", 11),
    _rental(3, "B", "2025-01-04 09:00:00", "member", "6", 12),  # key loaded in the first batch
]
PARTITIONS = dg.DailyPartitionsDefinition(start_date="2025-01-01")


def _contract(tmp_path: Path, yml: str, **values):
    path = tmp_path / "_sources.yml"
    path.write_text(yml.format(**values))
    (contract,) = contracts_from_yml(path)
    return contract


def _materialize(asset, warehouse, url, home, success=True):
    with environ({"H_DBSRC_TEST_URL": url, "HEADWATER_HOME": str(home)}):
        result = dg.materialize(
            [asset],
            resources={"warehouse": warehouse},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    assert result.success is success
    (materialization,) = result.asset_materializations_for_node(asset.op.name)
    return {k: v.value for k, v in materialization.metadata.items()}


def _rentals_end_to_end(tmp_path: Path, url: str, table: str) -> None:
    contract = _contract(tmp_path, RENTALS_YML, table=table, share=0.9)
    asset = build_database_asset(contract, PARTITIONS)
    warehouse = Warehouse(path=str(tmp_path / "warehouse.duckdb"))
    execute(
        url,
        CREATE_RENTALS.format(table=table),
        INSERT_RENTALS.format(table=table),
        rows=FIRST_BATCH,
    )

    first = _materialize(asset, warehouse, url, tmp_path)
    assert (first["rows_read"], first["rows_loaded"], first["rows_rejected"]) == (9, 4, 5)
    assert query(
        warehouse, "select rental_id, _partition_date::varchar from raw.rentals order by 1"
    ) == [(1, "2025-01-01"), (2, "2025-01-01"), (3, "2025-01-02"), (7, "2025-01-03")]
    refused = query(
        warehouse,
        "select source_table, source_file, column_name, reason, value, record "
        "from raw.quarantine order by source_row",
    )
    assert [(r[2], r[4]) for r in refused] == [
        ("rental_id", None),
        ("minutes", "abc"),
        ("rental_id", "2"),
        ("kind", "tourist"),
        ("started_at", "2024-12-31 23:00:00"),
    ]
    assert {r[0] for r in refused} == {"raw.rentals"}
    assert refused[1][1].endswith(f"/{table} where updated_at = 2025-01-05 00:00:05")
    assert "not a valid integer" in refused[1][3]
    assert "unique: duplicate of row 2 in this batch" == refused[2][3]
    assert "outside the partitions" in refused[4][3]
    assert '"rental_id":"4"' in refused[1][5].replace(" ", "")

    execute(url, INSERT_RENTALS.format(table=table), rows=SECOND_BATCH)
    second = _materialize(asset, warehouse, url, tmp_path)
    assert (second["rows_read"], second["rows_loaded"], second["rows_rejected"]) == (3, 2, 1)
    assert query(warehouse, "select count(*), max(rental_id) from raw.rentals") == [(6, 9)]
    (duplicate,) = query(
        warehouse,
        "select reason from raw.quarantine where value = '3' and column_name = 'rental_id'",
    )
    assert duplicate[0].startswith("unique: duplicate of a row already loaded from ")

    before = query(warehouse, "select * from raw.rentals order by rental_id")
    quarantined = query(warehouse, "select count(*) from raw.quarantine")
    third = _materialize(asset, warehouse, url, tmp_path)
    assert (third["rows_read"], third["rows_loaded"], third["rows_rejected"]) == (0, 0, 0)
    assert query(warehouse, "select * from raw.rentals order by rental_id") == before
    assert query(warehouse, "select count(*) from raw.quarantine") == quarantined == [(6,)]


def test_postgres_table_loads_incrementally_under_the_contract(tmp_path):
    with postgres_database("h_dbsrc") as url:
        _rentals_end_to_end(tmp_path, url, "public.rentals")


def test_mariadb_table_loads_incrementally_under_the_contract(tmp_path):
    with mariadb_database("h_dbsrc") as url:
        _rentals_end_to_end(tmp_path, url, url.rsplit("/", 1)[1] + ".rentals")


def test_a_crash_after_the_extract_loses_no_row(tmp_path):
    """dlt wrote its files and its state, then the run died before the warehouse commit: the
    next run reads the same rows again from the warehouse's cursor and loads them once."""
    with postgres_database("h_dbsrc") as url:
        contract = _contract(tmp_path, RENTALS_YML, table="public.rentals", share=0.9)
        execute(
            url,
            CREATE_RENTALS.format(table="public.rentals"),
            INSERT_RENTALS.format(table="public.rentals"),
            rows=FIRST_BATCH,
        )
        workdir = tmp_path / "database" / contract.table
        dlt_pipeline(workdir, contract).run(
            dlt_source(url, contract, None), loader_file_format="parquet"
        )
        assert list(workdir.rglob("*.parquet"))  # the dead run's extract

        warehouse = Warehouse(path=str(tmp_path / "warehouse.duckdb"))
        asset = build_database_asset(contract, PARTITIONS)
        again = _materialize(asset, warehouse, url, tmp_path)
        assert (again["rows_read"], again["rows_loaded"], again["rows_rejected"]) == (9, 4, 5)
        assert query(warehouse, "select count(*), count(distinct rental_id) from raw.rentals") == [
            (4, 4)
        ]
        assert not workdir.exists()


def test_a_refused_batch_is_read_again_once_fixed(tmp_path):
    """Over the rejected share nothing is loaded and the cursor stays; once the source is
    fixed, the next run loads the batch and its old quarantine rows are gone."""
    with postgres_database("h_dbsrc") as url:
        table = "public.rentals"
        contract = _contract(tmp_path, RENTALS_YML, table=table, share=0.1)
        execute(
            url,
            CREATE_RENTALS.format(table=table),
            INSERT_RENTALS.format(table=table),
            rows=FIRST_BATCH,
        )
        warehouse = Warehouse(path=str(tmp_path / "warehouse.duckdb"))
        asset = build_database_asset(contract, PARTITIONS)

        refused = _materialize(asset, warehouse, url, tmp_path, success=False)
        assert (refused["rows_read"], refused["rows_loaded"], refused["rows_rejected"]) == (9, 0, 5)
        assert query(warehouse, "select count(*) from raw.rentals") == [(0,)]
        assert query(warehouse, "select count(distinct source_row) from raw.quarantine") == [(5,)]

        execute(
            url,
            f"delete from {table} where rental_id is null or rental_id in (2, 4, 5, 6) "
            "and updated_at > '2025-01-05 00:00:03'",
        )
        fixed = _materialize(asset, warehouse, url, tmp_path)
        assert (fixed["rows_read"], fixed["rows_loaded"], fixed["rows_rejected"]) == (4, 4, 0)
        assert query(warehouse, "select count(*) from raw.quarantine") == [(0,)]


HOURS_YML = """
sources:
  - name: bikes
    schema: raw
    tables:
      - name: bike_hours
        config:
          meta:
            headwater:
              database: {{connection_env: H_DBSRC_TEST_URL, table: {table}, cursor_column: instant}}
              partitioned_by: dteday
        columns:
          - name: instant
            data_type: integer
            data_tests: [unique]
{columns}
"""


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_hour_csv_from_a_database_table(tmp_path, server):
    """The bike-sharing hours served from a table: every row read is loaded or quarantined."""
    types = {"integer": "integer", "date": "date", "double precision": "double"}
    columns = "\n".join(
        f"          - name: {name}\n            data_type: {types[sql_type]}"
        for name, sql_type in HOUR_COLUMNS.items()
        if name != "instant"
    )
    database = postgres_database if server == "postgresql" else mariadb_database
    with database("h_dbsrc") as url:
        table = (
            "public.bike_hours" if server == "postgresql" else url.rsplit("/", 1)[1] + ".bike_hours"
        )
        rows = hour_csv_into_table(url, table)
        contract = _contract(tmp_path, HOURS_YML, table=table, columns=columns)
        asset = build_database_asset(contract, dg.DailyPartitionsDefinition("2011-01-01"))
        warehouse = Warehouse(path=str(tmp_path / "warehouse.duckdb"))
        started = time.perf_counter()
        loaded = _materialize(asset, warehouse, url, tmp_path)
        seconds = time.perf_counter() - started
        print(f"{server}: {rows} hour rows in {seconds:.1f} s, {rows / seconds:.0f} rows/s")

    assert rows == 17_379 == loaded["rows_read"]
    assert loaded["rows_read"] == loaded["rows_loaded"] + loaded["rows_rejected"]
    assert loaded["rows_loaded"] == 17_379 and loaded["days"] == "2011-01-01..2012-12-31"
    assert query(
        warehouse,
        "select count(*), count(distinct _partition_date), sum(cnt), max(temp) from raw.bike_hours",
    ) == [(17_379, 731, 3_292_679, 1.0)]


def test_a_source_table_without_a_declared_column_fails_naming_it(tmp_path):
    with postgres_database("h_dbsrc") as url:
        table = "public.rentals"
        contract = _contract(tmp_path, RENTALS_YML, table=table, share=0.9)
        execute(
            url,
            CREATE_RENTALS.format(table=table),
            f"alter table {table} drop column kind",
            f"insert into {table} values (1, 'A', '2025-01-01 08:00:00', '12', now())",
        )
        warehouse = Warehouse(path=str(tmp_path / "warehouse.duckdb"))
        with environ({"H_DBSRC_TEST_URL": url, "HEADWATER_HOME": str(tmp_path)}):
            result = dg.materialize(
                [build_database_asset(contract, PARTITIONS)],
                resources={"warehouse": warehouse},
                instance=dg.DagsterInstance.ephemeral(),
                raise_on_error=False,
            )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    while error.cause is not None:  # Dagster wraps the asset's exception
        error = error.cause
    assert "raw.rentals: public.rentals has no columns ['kind']" in error.message
    assert query(warehouse, "select count(*) from raw.rentals") == [(0,)]
