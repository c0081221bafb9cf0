"""The bike-sharing example (`examples/bike_sharing/`) is read by the platform's own parsers:
its contract matches the real file, its spec is valid and names only columns its dbt models
declare. The example is declarations only, so nothing else would notice it going stale."""

from pathlib import Path

import duckdb
import yaml

from data_platform.raw.contract import contracts_from_yml
from data_platform.raw.ingest import load_file
from ml_assets.models.spec import spec_from_yml
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "bike_sharing"
MODELS = EXAMPLE / "dbt_project" / "models"
SOURCES = MODELS / "staging" / "bike_sharing" / "_bike_sharing__sources.yml"
DB_SOURCES = next((EXAMPLE / "optional" / "postgres").rglob("*__sources.yml"))
HOUR_CSV = ROOT.parent / "shared" / "data" / "bike_sharing" / "hour.csv"


def _declared_columns(yml: Path) -> dict[str, set[str]]:
    doc = yaml.safe_load(yml.read_text())
    return {m["name"]: {c["name"] for c in m.get("columns", [])} for m in doc["models"]}


def test_the_contract_matches_the_delivered_file():
    (rentals,) = contracts_from_yml(SOURCES)
    assert (rentals.table, rentals.asset_key) == ("rentals", ("raw", "rentals"))
    assert rentals.partition_column == "dteday"
    header = HOUR_CSV.open().readline().strip().split(",")
    assert list(rentals.column_names) == header
    assert rentals.unique_columns == ("instant",)
    assert rentals.column("hr").accepted_values == tuple(str(h) for h in range(24))
    assert rentals.column("weathersit").accepted_values == ("1", "2", "3", "4")
    # the PostgreSQL copy declares the same columns and types (read as yml: a source without
    # landing files needs the `database:` key of issue 14's dbsrc part to parse as a contract)
    ((from_db,),) = (s["tables"] for s in yaml.safe_load(DB_SOURCES.read_text())["sources"])
    assert [(c["name"], c["data_type"]) for c in from_db["columns"]] == [
        (c.name, c.data_type) for c in rentals.columns
    ]


def test_a_real_day_loads_under_the_contract(tmp_path):
    """The first day of hour.csv, split out as today's loader takes one file per day: every row
    passes the contract, a date column as the partition column included."""
    (rentals,) = contracts_from_yml(SOURCES)
    lines = HOUR_CSV.read_text().splitlines(keepends=True)
    day = [line for line in lines[1:] if line.split(",")[1] == "2011-01-01"]
    path = tmp_path / "hour_2011-01-01.csv"
    path.write_text(lines[0] + "".join(day))
    con = duckdb.connect()
    result = load_file(con, rentals, path, "2011-01-01")
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (24, 24, 0)
    ((hours, total),) = con.execute(
        "select count(distinct hr), sum(cnt) from raw.rentals"
    ).fetchall()
    assert (hours, total) == (24, 985)


def test_the_spec_names_only_declared_columns():
    spec = spec_from_yml(EXAMPLE / "model_specs" / "bike_demand.yml")
    assert spec.objective == "binary" and spec.promotion.metric == "roc_auc"
    models = _declared_columns(MODELS / "features" / "_features__bike_sharing.yml")
    features = models[spec.feature_set.split(".")[1]]
    labels = models[spec.label.table.split(".")[1]]
    named = {*spec.features, *spec.keys, spec.event_time, spec.score_date}
    assert named <= features, f"not in the feature set's yml: {sorted(named - features)}"
    assert {spec.label.column, spec.label.matures_at, *spec.keys} <= labels
    # every model has its SQL beside its yml, and only yml and SQL are in the example
    for name in models:
        assert (MODELS / "features" / f"{name}.sql").is_file()
    suffixes = {p.suffix for p in EXAMPLE.rglob("*") if p.is_file()}
    assert suffixes <= {".yml", ".sql"}
