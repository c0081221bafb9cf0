"""Raw -> staging -> marts -> features materialised through Dagster on real files.

One warehouse is built per module (the expensive part: three dbt invocations) and the tests
assert on what landed; tests that change it build their own.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from headwater.cli import EMBEDDED_INSTANCE_CONFIG
from headwater.headless import materialize_range
from headwater_core.config import dbt_project_dir
from headwater_core.dbt import in_process as dbt_in_process
from headwater_core.dbt.project import target_dir
from headwater_core.dbt.resource import _partial_parse_state, dbt_cli_resource
from headwater_core.resources import LandingZone, Warehouse
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.engine import TrainingEngine
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring.assets import MonitoringReports
from ml_assets.online.assets import OnlineStore
from tests.conftest import DEMO_FIRST_DAY, DEMO_LAST_DAY

# The layers this module checks; the models need more history than the 8-day demo world has.
WAREHOUSE = dg.AssetSelection.groups("raw", "staging", "intermediate", "marts", "features")


def _query(warehouse: Warehouse, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse.resolved_path()), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _landed_rows(landing: Path, folder: str) -> int:
    con = duckdb.connect()
    total = 0
    if list((landing / folder).glob("*.csv")):
        total += con.execute(
            f"select count(*) from read_csv('{landing}/{folder}/*.csv', all_varchar=true)"
        ).fetchone()[0]
    if list((landing / folder).glob("*.parquet")):
        total += con.execute(
            f"select count(*) from read_parquet('{landing}/{folder}/*.parquet')"
        ).fetchone()[0]
    return total


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_landing):
    """The demo range materialised once: (result, instance, resources, warehouse)."""
    tmp = tmp_path_factory.mktemp("built")
    (tmp / "dagster_home").mkdir()
    warehouse = Warehouse(path=str(tmp / "warehouse.duckdb"))
    resources = {
        "warehouse": warehouse,
        "landing": LandingZone(path=str(demo_landing)),
        "dbt": dbt_cli_resource(),
        # not used by the selected layers, but every asset passed to a run needs its resources
        "mlflow_tracking": MlflowTracking(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}"),
        "artifacts": ModelArtifacts(path=str(tmp / "ml")),
        "training_engine": TrainingEngine(),
        "online_store": OnlineStore(url=str(tmp / "online.sqlite")),
        "reports": MonitoringReports(path=str(tmp / "reports")),
    }
    overrides = yaml.safe_load(EMBEDDED_INSTANCE_CONFIG.read_text())
    # As a new process's first run: this pytest process may hold a parse for another
    # warehouse.duckdb, which the run would reuse, and this run is the one that parses.
    dbt_in_process._MANIFESTS.clear()
    with dg.instance_for_test(temp_dir=str(tmp / "dagster_home"), overrides=overrides) as inst:
        result = materialize_range(
            DEMO_FIRST_DAY, DEMO_LAST_DAY, instance=inst, resources=resources, selection=WAREHOUSE
        )
        yield result, inst, resources, warehouse


def test_every_landed_row_reaches_the_marts(built, demo_landing):
    result, _, _, warehouse = built
    assert result.success, result.failure
    landed = _landed_rows(demo_landing, "transactions")
    assert landed > 3_000
    assert _query(warehouse, "select count(*) from raw.transactions") == [(landed,)]
    assert _query(warehouse, "select count(*) from marts.fct_transactions") == [(landed,)]
    per_day = _query(
        warehouse,
        "select r._partition_date, count(*), any_value(f.n) from raw.transactions r "
        "join (select transaction_date, count(*) n from marts.fct_transactions group by 1) f "
        "on f.transaction_date = r._partition_date group by 1 order by 1",
    )
    assert len(per_day) == 8 and all(raw == fact for _, raw, fact in per_day)
    assert _query(warehouse, "select count(*) from features.transaction_features") == [(landed,)]


def test_a_range_run_plans_each_asset_once_and_leaves_dbt_its_parse_state(built):
    """The bookkeeping a range run pays before and around its work does not grow with its days:
    one planned-materialisation event per asset (not one per asset and day), and dbt's
    partial-parse state kept for this warehouse so the next run skips a full parse."""
    result, inst, _, warehouse = built
    planned = [
        e.dagster_event.asset_key
        for e in inst.all_logs(result.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION_PLANNED"
    ]
    materialized = {k for k in result.assets}
    assert len(planned) == len(set(planned)) == len(materialized) >= 20
    # the switch is the run's own: it is not left set for whatever the process does next
    assert "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS" not in os.environ
    # every day of the range still has its own materialisation
    transactions = inst.fetch_materializations(dg.AssetKey(["raw", "transactions"]), limit=100)
    assert {r.partition_key for r in transactions.records} == {
        k
        for k in dg.DailyPartitionsDefinition(DEMO_FIRST_DAY).get_partition_keys()
        if DEMO_FIRST_DAY <= k <= DEMO_LAST_DAY
    }
    targets = target_dir(dbt_project_dir())
    assert _partial_parse_state(targets, warehouse, ["build"], in_process=True).exists()
    assert (
        _partial_parse_state(targets, warehouse, ["build", "--vars", "{}"], in_process=False)
        is None
    )


def test_dimensions_cover_the_facts(built):
    _, _, _, warehouse = built
    for dim, key in (("dim_customers", "customer_id"), ("dim_merchants", "merchant_id")):
        assert _query(
            warehouse,
            f"select count(*) from marts.fct_transactions f left join marts.{dim} d "
            f"using ({key}) where d.{key} is null",
        ) == [(0,)]
    assert _query(warehouse, "select count(*) from marts.dim_customers") == _query(
        warehouse, "select count(*) from raw.customers"
    )


def test_chargebacks_are_labels_reported_after_their_transaction(built):
    _, _, _, warehouse = built
    (total, in_window, labelled) = _query(
        warehouse,
        "select count(*), count(*) filter (where days_to_report between 1 and 60), "
        "count(*) filter (where transaction_date is not null) from marts.fct_chargebacks",
    )[0]
    assert total == _query(warehouse, "select count(*) from raw.chargebacks")[0][0] > 0
    assert in_window == labelled == total


def test_metadata_and_checks_for_the_ui(built):
    result, instance, _, _ = built
    assert not [a.key for a in result.assets.values() if a.checks_failed]
    fct = result.assets["marts/fct_transactions"]
    assert fct.row_count == fct.partition_row_count > 0 and fct.checks_passed >= 5
    raw = result.assets["raw/transactions"]
    assert raw.partition_row_count == raw.row_count and raw.checks_passed == 1
    event = instance.get_latest_materialization_event(dg.AssetKey(["marts", "dim_customers"]))
    metadata = event.asset_materialization.metadata
    assert metadata["dagster/row_count"].value > 0
    assert metadata["preview"].value.startswith("| customer_id")
    raw_event = instance.get_latest_materialization_event(dg.AssetKey(["raw", "transactions"]))
    assert raw_event.asset_materialization.metadata["rows_rejected"].value == 0


# Slow tier: 23 s on the slowest machine of this kind yet (the default tier's 15 minutes).
@pytest.mark.slow
def test_an_analyst_can_run_dbt_build_on_its_own(built):
    """`dbt build` from dbt_project/, as an analyst runs it: profiles.yml in the folder, the
    DuckDB path from the same variable the platform uses, unit tests included (Dagster runs
    skip them: they test SQL, not data)."""
    _, _, _, warehouse = built
    before = _query(warehouse, "select count(*) from marts.fct_transactions")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build"],
        cwd=dbt_project_dir(),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HEADWATER_DUCKDB_PATH": str(warehouse.resolved_path())},
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert " ERROR=0" in out.stdout and "unit test" in out.stdout
    assert _query(warehouse, "select count(*) from marts.fct_transactions") == before


def test_rerunning_the_range_changes_nothing(built):
    """Run again, with dbt in a subprocess this time (the built warehouse ran it in process):
    the two ways of running dbt give the same warehouse."""
    _, instance, resources, warehouse = built
    assert dbt_in_process._MANIFESTS, "the first build ran dbt in this process"
    before = _query(warehouse, "select * from marts.fct_transactions order by transaction_id")
    quarantine = _query(warehouse, "select count(*) from raw.quarantine")
    again = materialize_range(
        DEMO_FIRST_DAY,
        DEMO_LAST_DAY,
        instance=instance,
        resources={**resources, "dbt": dbt_cli_resource().model_copy(update={"in_process": False})},
        selection=WAREHOUSE,
    )
    assert again.success, again.failure
    assert (
        _query(warehouse, "select * from marts.fct_transactions order by transaction_id") == before
    )
    assert _query(warehouse, "select count(*) from raw.quarantine") == quarantine


def test_one_day_replaces_only_that_day(built):
    _, instance, resources, warehouse = built
    before = _query(
        warehouse,
        "select transaction_date, count(*) from marts.fct_transactions group by 1 order by 1",
    )
    daily_only = dg.AssetSelection.groups("raw", "marts") - dg.AssetSelection.assets(
        ["raw", "customers"],
        ["raw", "merchants"],
        ["marts", "dim_customers"],
        ["marts", "dim_merchants"],
    )
    one_day = materialize_range(
        "2025-01-03", "2025-01-03", instance=instance, resources=resources, selection=daily_only
    )
    assert one_day.success, one_day.failure
    assert (
        one_day.assets["marts/fct_transactions"].partition_row_count
        == dict(before)[date(2025, 1, 3)]
    )
    assert (
        _query(
            warehouse,
            "select transaction_date, count(*) from marts.fct_transactions group by 1 order by 1",
        )
        == before
    )


def _altered_copy(warehouse: Warehouse, tmp_path: Path, *statements: str) -> Warehouse:
    """A copy of the built warehouse with `statements` run on it (the module's stays intact)."""
    copy = Warehouse(path=str(tmp_path / "warehouse.duckdb"))
    shutil.copyfile(warehouse.resolved_path(), copy.resolved_path())
    con = duckdb.connect(str(copy.resolved_path()))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()
    return copy


def test_a_failing_dbt_test_fails_its_check_and_the_run(built, tmp_path):
    """dbt in process reports a failing test as dbt in a subprocess did: the asset check fails,
    the step fails with dbt's own words, and the facts of other days are untouched."""
    _, instance, resources, warehouse = built
    # a row loaded twice behind the contract's back: fct_transactions' unique test must catch it
    copy = _altered_copy(
        warehouse,
        tmp_path,
        "insert into raw.transactions select * from raw.transactions "
        "where _partition_date = date '2025-01-03' limit 1",
    )
    other_days = (
        "select count(*) from marts.fct_transactions where transaction_date <> '2025-01-03'"
    )
    before = _query(copy, other_days)

    result = materialize_range(
        "2025-01-03",
        "2025-01-03",
        instance=instance,
        resources={**resources, "warehouse": copy},
        selection=dg.AssetSelection.assets(["marts", "fct_transactions"]),
    )

    assert not result.success
    failed = result.assets["marts/fct_transactions"].checks_failed
    assert "unique_and_not_null_fct_transactions" in failed, failed
    assert "unique_and_not_null_fct_transactions" in result.failure
    assert _query(copy, other_days) == before


def _dbt(warehouse: Warehouse, target: Path, *args: str, check: bool = True, **env: str) -> str:
    """`dbt <args>` from dbt_project/ on `warehouse`, in a subprocess as an analyst runs it: its
    output (`check`: a failure fails the test)."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args, "--target-path", str(target)],
        cwd=dbt_project_dir(),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HEADWATER_DUCKDB_PATH": str(warehouse.resolved_path()), **env},
    )
    assert out.returncode == 0 or not check, out.stdout[-3000:]
    return out.stdout


def _dbt_test(warehouse: Warehouse, target: Path, select: str, window: tuple[str, str] | None):
    """`dbt test --select <select>` on `warehouse`, in a window (as a partition run passes it)
    or on everything (as an analyst runs it): the failed tests, as (name, failures)."""
    args = ["test", "--select", select]
    if window:
        args += ["--vars", f'{{min_date: "{window[0]}", max_date: "{window[1]}"}}']
    out = _dbt(warehouse, target, *args, check=False)
    assert "Completed" in out or "Failure" in out, out[-3000:]
    # dbt's line for a failed test: "3 of 11 FAIL 1 unique_and_not_null_fct_transactions ..."
    return sorted((name, int(n)) for n, name in re.findall(r" FAIL (\d+) (\w+)", out))


# Slow tier: 52 s on the slowest machine of this kind yet (the default tier's 15 minutes).
@pytest.mark.slow
def test_a_windowed_run_tests_the_rows_it_wrote_and_keys_against_all(built, tmp_path):
    """In a partition run, a data test reads the window's rows (a bad row of another day is not
    re-read every day), while a key's uniqueness is still checked against every other day."""
    _, _, _, warehouse = built
    # day 3: a null customer and a null merchant behind the model's back, and a copy of one of
    # day 4's rows
    copy = _altered_copy(
        warehouse,
        tmp_path,
        "update marts.fct_transactions set customer_id = null where transaction_id = "
        "(select min(transaction_id) from marts.fct_transactions "
        " where transaction_date = date '2025-01-03')",
        "update marts.fct_transactions set merchant_id = null where transaction_id = "
        "(select max(transaction_id) from marts.fct_transactions "
        " where transaction_date = date '2025-01-03')",
        "insert into marts.fct_transactions select * replace (date '2025-01-03' as "
        "transaction_date) from marts.fct_transactions "
        "where transaction_date = date '2025-01-04' limit 1",
        # day 5: a null key, which no key of the window can match: read as the window's row
        "update marts.fct_transactions set transaction_id = null where transaction_id = "
        "(select min(transaction_id) from marts.fct_transactions "
        " where transaction_date = date '2025-01-05')",
    )
    target = tmp_path / "target"

    day_4 = _dbt_test(copy, target, "fct_transactions", ("2025-01-04", "2025-01-05"))
    day_5 = _dbt_test(copy, target, "fct_transactions", ("2025-01-05", "2025-01-06"))
    everything = _dbt_test(copy, target, "fct_transactions", None)

    # the duplicate spans days 3 and 4: the run of day 4 sees it, the run of day 5 does not;
    # day 3's nulls are re-read by neither; day 5 sees its own null key
    assert day_4 == [("unique_and_not_null_fct_transactions", 1)]
    assert day_5 == [("unique_and_not_null_fct_transactions", 1)]
    # an analyst's `dbt test` (no window) reads every row: all faults, the three nulls and the
    # duplicated key counted by the model's one test
    assert everything == [("unique_and_not_null_fct_transactions", 4)]


def test_a_models_key_and_required_columns_are_one_test_that_names_each_fault(built, tmp_path):
    """tests/generic/unique_and_not_null.sql: one test per model checks its key's uniqueness and
    all its required columns in one query; its rows name each fault and count it."""
    _, _, _, warehouse = built
    copy = _altered_copy(
        warehouse,
        tmp_path,
        "update marts.dim_merchants set category = null where merchant_id in "
        "(select merchant_id from marts.dim_merchants order by merchant_id limit 2)",
        "insert into marts.dim_merchants select * from marts.dim_merchants "
        "order by merchant_id desc limit 1",
    )
    target = tmp_path / "target"
    test = "unique_and_not_null_dim_merchants"

    shown = _dbt(copy, target, "show", "--select", test, "--output", "json")
    rows = json.loads(shown[shown.index("{") : shown.rindex("}") + 1])["show"]

    assert sorted(rows, key=lambda r: r["fault"]) == [
        {"fault": "duplicate", "column_names": "merchant_id", "failing": 1},
        {"fault": "null", "column_names": "category", "failing": 2},
    ]
    assert _dbt_test(copy, target, "dim_merchants", None) == [(test, 3)]


def test_dbt_runs_with_the_resource_threads_and_memory_limit(built, tmp_path):
    """profiles.yml gives dbt's DuckDB connection the threads and memory_limit of the variables
    the Warehouse resource sets for its runs."""
    _, _, _, warehouse = built
    copy = _altered_copy(warehouse, tmp_path)
    shown = _dbt(
        copy,
        tmp_path / "target",
        "show",
        "--inline",
        "select current_setting('threads') as t, current_setting('memory_limit') as m",
        HEADWATER_DUCKDB_THREADS="1",
        HEADWATER_DUCKDB_MEMORY_LIMIT="512MB",
    )
    # dbt show prints a table row: | 1 | 488.2 MiB |
    assert re.search(r"\|\s*1\s*\|\s*488\.2 MiB\s*\|", shown), shown[-2000:]


def test_a_view_is_replaced_in_place(built, tmp_path):
    """macros/cross_db/view.sql: a staging view is rebuilt by one `create or replace view` (dbt's
    default renames an intermediate view over it, through a backup), and replaces a table of the
    same name (a model that was a table before)."""
    _, _, _, warehouse = built
    copy = _altered_copy(
        warehouse,
        tmp_path,
        "drop view staging.stg_crm__customers",
        "create table staging.stg_crm__customers as select 1 as stale",
    )
    log = _dbt(copy, tmp_path / "target", "--debug", "run", "--select", "staging")
    assert log.count("create or replace view") == 4, log[-3000:]
    assert "__dbt_tmp" not in log and "__dbt_backup" not in log
    relations = _query(
        copy,
        "select table_name, table_type from information_schema.tables "
        "where table_schema = 'staging' order by 1",
    )
    assert relations == [
        ("stg_acquirer__merchants", "VIEW"),
        ("stg_crm__customers", "VIEW"),
        ("stg_payments__chargebacks", "VIEW"),
        ("stg_payments__transactions", "VIEW"),
    ]
    assert _query(copy, "select count(*) from staging.stg_crm__customers") == _query(
        warehouse, "select count(*) from staging.stg_crm__customers"
    )
