"""Headwater projects: `headwater init` makes one that loads with nothing in it, a project with
history from 2011 at a monthly grain loads with no code change, and the dbt window macro
rebuilds the last partition at each grain.

Each test points HEADWATER_PROJECT_DIR at its own project; the code locations are built per
project folder, so the repository's demo is untouched.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from data_platform.demo_feed import has_demo_sources
from data_platform.raw.contract import load_contracts
from headwater.cli import main
from headwater.project import init_project, remove_demo
from tests.conftest import ROOT

RENTALS_SOURCES = """
sources:
  - name: rentals
    schema: raw
    tables:
      - name: rentals
        config:
          meta:
            dagster: {asset_key: ["raw", "rentals"]}
            headwater:
              landing_pattern: "rentals/rentals_{month}.*"
              delivery: month
              partitioned_by: rented_at
              max_rejected_share: 0.5
        columns:
          - {name: rental_id, data_type: integer, data_tests: [unique, not_null]}
          - {name: rented_at, data_type: timestamp, data_tests: [not_null]}
          - {name: bikes, data_type: integer, data_tests: [not_null]}
"""
STAGING = "select rental_id, rented_at, bikes from {{ source('rentals', 'rentals') }}\n"
MART = """{{ config(
    materialized='incremental', incremental_strategy='append', tags=['daily'],
    meta={'headwater': {'partition_column': 'rented_at'}},
    pre_hook="{{ delete_partition_window('rented_at') }}",
) }}
select date_trunc('month', rented_at) as month, rental_id, rented_at, bikes
from {{ ref('stg_rentals__rentals') }}
where {{ partition_window_filter('rented_at') }}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project (`headwater init`) with its own state folder, configured."""
    folder = tmp_path / "project"
    init_project(folder)
    home = folder / ".headwater"
    (home / "dagster_home").mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # set here (not left to `headwater`'s defaults) so that the test's end puts them back
    monkeypatch.setenv("HEADWATER_PROJECT_DIR", str(folder))
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    monkeypatch.setenv("HEADWATER_DUCKDB_PATH", str(home / "warehouse.duckdb"))
    monkeypatch.setenv("HEADWATER_LANDING_DIR", str(home / "landing"))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    return folder


def _set_partitions(project: Path, **values: str) -> None:
    yml = project / "dbt_project" / "dbt_project.yml"
    text = yml.read_text()
    defaults = {"start": '"2025-01-01"', "end": "null", "grain": "daily"}
    for key, value in values.items():
        text = text.replace(f"{key}: {defaults[key]}", f"{key}: {value}", 1)
    yml.write_text(text)


def _definitions():
    from data_platform.definitions import project_definitions as data
    from ml_assets.definitions import project_definitions as ml

    return data(), ml()


def test_an_empty_project_loads_and_materialises_nothing(project, capsys):
    assert not (project / "dbt_project" / "models" / "staging" / "payments").exists()
    data, ml = _definitions()
    assert not data.resolve_asset_graph().get_all_asset_keys()
    assert not ml.resolve_asset_graph().get_all_asset_keys()
    # no demo sources: no demo feed
    assert [j.name for j in data.jobs] == ["daily_warehouse_job"] and not data.schedules
    assert main(["materialize", "--start", "2025-01-01", "--end", "2025-01-02"]) == 0
    capsys.readouterr()
    # a user error: one line naming the setting, exit 1 (headwater.errors)
    assert main(["materialize", "--start", "2024-12-31", "--end", "2025-01-02"]) == 1
    assert capsys.readouterr().err == (
        "headwater materialize: 2024-12-31 is before the first partition 2025-01-01 "
        "(vars.headwater.partitions.start in dbt_project/dbt_project.yml)\n"
    )
    # the repository's project declares the demo's sources: it gets the feed
    assert has_demo_sources(load_contracts(ROOT / "dbt_project").values())


# Slow tier: 24 s on the slowest machine of this kind yet (the default tier's 15 minutes).
@pytest.mark.slow
def test_dagster_loads_the_location_of_the_configured_project(project):
    """Dagster's own loader (as the code servers load a module) builds the definitions when it
    loads them: of the project HEADWATER_PROJECT_DIR names."""
    staging = project / "dbt_project" / "models" / "staging" / "rentals"
    staging.mkdir()
    (staging / "_rentals__sources.yml").write_text(RENTALS_SOURCES)
    dagster = str(Path(sys.executable).parent / "dagster")
    out = subprocess.run(
        [dagster, "asset", "list", "-m", "data_platform.definitions"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # (after dbt's notes that the empty layers select nothing)
    assert out.stdout.splitlines()[-1] == "raw/rentals"


def test_init_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("mine")
    assert main(["init", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_removing_the_demo_leaves_an_empty_project(tmp_path):
    for folder in ("dbt_project", "model_specs"):
        shutil.copytree(
            ROOT / folder,
            tmp_path / folder,
            ignore=shutil.ignore_patterns("target", "logs", ".user.yml"),
        )
    removed = remove_demo(tmp_path)
    assert len(removed) > 20
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    empty = tmp_path / "empty"
    init_project(empty)
    expected = sorted(
        str(p.relative_to(empty))
        for p in empty.rglob("*")
        if p.is_file() and p.name not in (".gitkeep", ".gitignore")
    )
    assert left == expected
    assert remove_demo(tmp_path) == []


def _land(landing: Path, month: str, rows: list[tuple[int, str, int]]) -> None:
    path = landing / "rentals" / f"rentals_{month}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("rental_id,rented_at,bikes\n" + "".join(f"{i},{at},{n}\n" for i, at, n in rows))


# 16 s; the default tier loads a configured project in
# test_dagster_loads_the_location_of_the_configured_project
@pytest.mark.slow
def test_a_monthly_partitioned_project_from_2011_loads(project):
    """History from 2011 at a monthly grain: the setting, a contract, SQL; no Python."""
    _set_partitions(project, start='"2011-01-01"', end='"2012-01-01"', grain="monthly")
    staging = project / "dbt_project" / "models" / "staging" / "rentals"
    staging.mkdir()
    (staging / "_rentals__sources.yml").write_text(RENTALS_SOURCES)
    (staging / "stg_rentals__rentals.sql").write_text(STAGING)
    (project / "dbt_project" / "models" / "marts" / "fct_rentals.sql").write_text(MART)
    landing = project / ".headwater" / "landing"
    _land(landing, "2011-01", [(1, "2011-01-01 00:10", 3), (2, "2011-01-31 23:50", 4)])
    # a row of March in February's file is quarantined, not loaded and not lost
    _land(landing, "2011-02", [(3, "2011-02-14 12:00", 5), (4, "2011-03-01 00:00", 6)])
    from headwater.headless import materialize_range

    data, _ = _definitions()
    definition = data.resolve_asset_graph().get(dg.AssetKey(["raw", "rentals"])).partitions_def
    assert isinstance(definition, dg.MonthlyPartitionsDefinition)
    # the settle interval: the files were just written
    os.utime(landing / "rentals" / "rentals_2011-01.csv", (0, 0))
    os.utime(landing / "rentals" / "rentals_2011-02.csv", (0, 0))
    result = materialize_range("2011-01-01", "2011-02-28")
    assert result.success, result.failure
    assert (result.start, result.end) == ("2011-01-01", "2011-02-01")
    con = duckdb.connect(str(project / ".headwater" / "warehouse.duckdb"), read_only=True)
    try:
        raw = con.execute(
            "select rental_id, _partition_date::varchar from raw.rentals order by 1"
        ).fetchall()
        assert raw == [(1, "2011-01-01"), (2, "2011-01-01"), (3, "2011-02-01")]
        quarantined = con.execute(
            "select source_row, reason from raw.quarantine where source_row is not null"
        ).fetchall()
        ((line, reason),) = quarantined
        assert line == 3 and "outside the file's month 2011-02" in reason, reason
        mart = con.execute(
            "select month::date::varchar, sum(bikes) from marts.fct_rentals group by 1 order by 1"
        ).fetchall()
        assert mart == [("2011-01-01", 7), ("2011-02-01", 5)]
    finally:
        con.close()
    assert not result.assets["raw/rentals"].checks_failed


# --- the dbt window macro at each grain ---------------------------------------------------------

EVENTS = """{{ config(
    materialized='incremental', incremental_strategy='append',
    pre_hook="{{ delete_partition_window('happened_at') }}",
) }}
select id, happened_at from source_events where {{ partition_window_filter('happened_at') }}
"""


def _dbt(project: Path, warehouse: Path, *args: str) -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args, "--quiet"],
        cwd=project / "dbt_project",
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HEADWATER_DUCKDB_PATH": str(warehouse)},
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]


# Slow tier: 17-36 s a grain for two dbt processes (hourly was in the default tier until that
# tier passed its 15 minutes on a slower machine).
@pytest.mark.slow
@pytest.mark.parametrize(
    "grain, rebuilt",
    # Loaded up to 2011-03-15 10:30. A late row at each distance: which ones a run without
    # vars picks up is the partition it rebuilds, the one holding the newest loaded row.
    [("hourly", {4}), ("daily", {3, 4}), ("weekly", {2, 3, 4}), ("monthly", {1, 2, 3, 4})],
)
def test_the_window_macro_rebuilds_the_last_partition_of_its_grain(project, grain, rebuilt):
    _set_partitions(project, start='"2011-01-01"', grain=grain)
    (project / "dbt_project" / "models" / "marts" / "events.sql").write_text(EVENTS)
    warehouse = project / "events.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create table source_events (id integer, happened_at timestamp)")
    con.execute("insert into source_events values (0, '2011-03-15 10:30')")
    con.close()
    _dbt(project, warehouse, "run")
    late = [
        (1, "2011-03-01 08:00"),  # same month, an earlier week (2011-03-14 is a Monday)
        (2, "2011-03-14 08:00"),  # same week, an earlier day
        (3, "2011-03-15 08:00"),  # same day, an earlier hour
        (4, "2011-03-15 10:05"),  # same hour
    ]
    con = duckdb.connect(str(warehouse))
    con.executemany("insert into source_events values (?, ?)", late)
    con.close()
    _dbt(project, warehouse, "run")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        ids = {i for (i,) in con.execute("select id from marts.events").fetchall()}
    finally:
        con.close()
    assert ids == {0, *rebuilt}
    if grain == "hourly":
        # a partition run passes its window as UTC timestamps
        vars_ = '{"min_date": "2011-03-15 08:00:00", "max_date": "2011-03-15 09:00:00"}'
        con = duckdb.connect(str(warehouse))
        con.execute("insert into source_events values (5, '2011-03-15 08:59')")
        con.close()
        _dbt(project, warehouse, "run", "--vars", vars_)
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            ids = {i for (i,) in con.execute("select id from marts.events").fetchall()}
        finally:
            con.close()
        assert ids == {0, 3, 4, 5}
