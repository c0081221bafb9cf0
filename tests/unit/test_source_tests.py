"""The whole contract, or a clear refusal (issue 14, item 4): every test declared on a source is
enforced row by row at ingestion, the row quarantined naming its line, column and test; a test
ingestion cannot enforce stops the contract from loading, in one line naming it."""

import duckdb
import pytest
import yaml

from data_platform.raw.contract import ContractError, load_contracts
from data_platform.raw.ingest import load_file
from tests.bike_sharing import COLUMNS, bike_contract, hour_lines

DAY1, DAY2 = "2011-01-01", "2011-01-02"


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def _rows(con, sql: str, *params) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def _land(tmp_path, folder: str, day: str, lines: list[str]) -> object:
    path = tmp_path / "landing" / folder / f"{folder}_{day}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _set(line: str, **values) -> str:
    """A hour.csv line with some fields replaced."""
    fields = line.split(",")
    names = [c["name"] for c in COLUMNS]
    for name, value in values.items():
        fields[names.index(name)] = str(value)
    return ",".join(fields)


def test_every_declared_test_quarantines_its_rows_naming_line_column_and_test(con, tmp_path):
    contract = bike_contract(tmp_path / "project")
    header, day1 = hour_lines(DAY1)
    load_file(con, contract, _land(tmp_path, "rentals", DAY1, [header, *day1]), DAY1)
    header, lines = hour_lines(DAY2)
    lines[1] = _set(lines[1], hr=30)  # line 3
    lines[3] = _set(lines[3], season=5)  # line 5
    lines[5] = _set(lines[5], casual=-1, registered=2, cnt=0)  # line 7: two tests
    lines[7] = _set(lines[7], cnt=999)  # line 9: the table-level expression
    lines[9] = _set(lines[9], temp=1.5, cnt="")  # line 11: range, and a null cnt
    result = load_file(con, contract, _land(tmp_path, "rentals", DAY2, [header, *lines]), DAY2)
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (23, 18, 5)
    expression = "expression_is_true: casual + registered = cnt"
    assert _rows(
        con,
        "select source_row, column_name, reason, value from raw.quarantine "
        "where partition_key = ? order by 1, 2, 3",
        DAY2,
    ) == [
        (3, "hr", "accepted_range: outside [0, 23]", "30"),
        (5, "season", "accepted_values: not one of ['1', '2', '3', '4']", "5"),
        (7, "casual", "accepted_range: outside [0, ]", "-1"),
        (7, "casual, registered, cnt", expression, None),
        (9, "casual, registered, cnt", expression, None),
        (11, "cnt", "not_null: null in required column", None),
        (11, "temp", "accepted_range: outside [0, 1]", "1.5"),
    ]
    # the other rows of the day loaded, and the day before kept its own
    assert _rows(
        con,
        "select _partition_date::varchar, count(*) from raw.rentals group by 1 order by 1",
    ) == [(DAY1, len(day1)), (DAY2, 18)]


def _stations_and_trips(project, trip_tests: list) -> dict:
    """Two tables of one source: a station snapshot and trips whose station must be in it."""
    yml = project / "models" / "staging" / "bike" / "_bike__sources.yml"
    yml.parent.mkdir(parents=True, exist_ok=True)

    def table(name, columns, **headwater):
        meta = {"landing_pattern": f"{name}/{name}_{{date}}.*", **headwater}
        return {"name": name, "config": {"meta": {"headwater": meta}}, "columns": columns}

    stations = table("stations", [{"name": "station_id", "data_type": "integer"}], snapshot=True)
    trips = table(
        "trips",
        [
            {"name": "trip_id", "data_type": "integer", "data_tests": ["unique"]},
            {"name": "station_id", "data_type": "integer", "data_tests": trip_tests},
            {"name": "day", "data_type": "date"},
        ],
        partitioned_by="day",
    )
    trips["data_tests"] = [
        {
            "unique_combination_of_columns": {
                "arguments": {"combination_of_columns": ["station_id", "day"]}
            }
        }
    ]
    source = {"name": "bike", "schema": "raw", "tables": [stations, trips]}
    yml.write_text(yaml.safe_dump({"version": 2, "sources": [source]}))
    return load_contracts(project)


def test_relationships_are_checked_against_the_loaded_parent_table(con, tmp_path):
    relationship = {
        "relationships": {"arguments": {"to": "source('bike', 'stations')", "field": "station_id"}}
    }
    contracts = _stations_and_trips(tmp_path / "project", [relationship])
    stations = _land(tmp_path, "stations", DAY1, ["station_id", "1", "2"])
    load_file(con, contracts["stations"], stations, DAY1)
    trips = ["trip_id,station_id,day", f"1,1,{DAY1}", f"2,3,{DAY1}", f"3,,{DAY1}", f"4,2,{DAY1}"]
    result = load_file(con, contracts["trips"], _land(tmp_path, "trips", DAY1, trips), DAY1)
    assert (result.rows_loaded, result.rows_rejected) == (3, 1)
    assert _rows(con, "select source_row, column_name, reason, value from raw.quarantine") == [
        (3, "station_id", "relationships: not in source('bike', 'stations').station_id", "3")
    ]


def test_a_combination_of_columns_is_unique_within_the_file_and_across_days(con, tmp_path):
    contracts = _stations_and_trips(tmp_path / "project", [])
    trips = contracts["trips"]
    load_file(
        con, trips, _land(tmp_path, "trips", DAY1, ["trip_id,station_id,day", f"1,1,{DAY1}"]), DAY1
    )
    day2 = ["trip_id,station_id,day", f"2,1,{DAY2}", f"3,2,{DAY2}", f"4,1,{DAY2}", f"5,1,{DAY1}"]
    load_file(con, trips, _land(tmp_path, "trips", DAY2, day2), DAY2)
    reasons = _rows(
        con,
        "select source_row, column_name, reason from raw.quarantine "
        "where reason like 'unique_combination%' order by 1",
    )
    assert [r[:2] for r in reasons] == [(4, "station_id, day"), (5, "station_id, day")]
    assert reasons[0][2] == "unique_combination_of_columns: duplicate of row 2 in this file"
    assert reasons[1][2].startswith(
        "unique_combination_of_columns: duplicate of a row already loaded from"
    )


@pytest.mark.parametrize(
    "column_tests, table_tests, says",
    [
        (["is_even"], [], "column hr: test 'is_even' cannot be enforced at ingestion"),
        (
            [{"dbt_utils.accepted_range": {"arguments": {"min_value": 0}}}],
            [],
            "column hr: test 'dbt_utils.accepted_range'",
        ),
        ([{"accepted_range": {"arguments": {}}}], [], "needs the arguments"),
        (
            [{"expression_is_true": {"arguments": {"expression": "between 0 and hours"}}}],
            [],
            "column hr: test 'expression_is_true' cannot be enforced at ingestion: its SQL "
            'does not run (Binder Error: Referenced column "hours" not found',
        ),
        (
            [{"relationships": {"arguments": {"to": "ref('stg_hours')", "field": "hr"}}}],
            [],
            "is not a source()",
        ),
        (
            [{"relationships": {"arguments": {"to": "source('bike', 'hours')", "field": "hr"}}}],
            [],
            "is not a column of a raw table with a contract",
        ),
        (
            [{"accepted_range": {"arguments": {"max_value": 23}, "config": {"where": "yr = 1"}}}],
            [],
            "a `where` config is not applied at ingestion",
        ),
        ([], ["not_null"], "table-level: test 'not_null' cannot be enforced"),
    ],
    ids=[
        "unknown",
        "package-test",
        "no-arguments",
        "bad-sql",
        "ref",
        "unknown-parent",
        "where",
        "column-test-on-table",
    ],
)
def test_a_test_ingestion_cannot_enforce_is_refused_in_one_line(
    tmp_path, column_tests, table_tests, says
):
    columns = [
        {**c, "data_tests": [*c["data_tests"], *column_tests]} if c["name"] == "hr" else c
        for c in COLUMNS
    ]
    with pytest.raises(ContractError) as error:
        bike_contract(tmp_path / "project", columns=columns, data_tests=table_tests)
    message = str(error.value)
    assert "\n" not in message and "source bike.rentals" in message
    assert says in message


def test_a_disabled_test_is_not_enforced(tmp_path):
    columns = [
        {**c, "data_tests": ["not_null", {"is_even": {"config": {"enabled": False}}}]}
        if c["name"] == "hr"
        else c
        for c in COLUMNS
    ]
    contract = bike_contract(tmp_path / "project", columns=columns)
    assert contract.column("hr").required and contract.column("hr").tests == ()
