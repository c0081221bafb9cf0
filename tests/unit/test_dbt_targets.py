"""The dbt targets: DuckDB (`local`, the default) and Spark (`spark`) in the project's
profiles.yml, and how a run chooses one (configuration, not code: docs/scale-out.md). Reads the
profile as YAML; no dbt parse, no Spark."""

from pathlib import Path

import pytest
import yaml

from headwater_core.dbt.in_process import _target_arg
from headwater_core.dbt.resource import dbt_cli_resource, dbt_target
from headwater_core.names import DBT_TARGET_DUCKDB, DBT_TARGET_SPARK, DBT_TARGET_VARIABLE

PROFILES = Path(__file__).resolve().parents[2] / "dbt_project" / "profiles.yml"


def test_the_profile_has_both_targets_and_reads_the_choice_from_the_variable():
    profile = yaml.safe_load(PROFILES.read_text())["headwater"]
    assert set(profile["outputs"]) == {DBT_TARGET_DUCKDB, DBT_TARGET_SPARK}
    assert profile["target"] == f"{{{{ env_var('{DBT_TARGET_VARIABLE}', '{DBT_TARGET_DUCKDB}') }}}}"
    assert profile["outputs"][DBT_TARGET_DUCKDB]["type"] == "duckdb"
    spark = profile["outputs"][DBT_TARGET_SPARK]
    assert (spark["type"], spark["method"]) == ("spark", "session")
    params = spark["server_side_parameters"]
    # the UI would take port 4040; range frames and date casts assume UTC
    assert params["spark.ui.enabled"] == "false"
    assert params["spark.sql.session.timeZone"] == "UTC"
    assert not any("4040" in str(value) for value in params.values())


def test_the_resource_target_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(DBT_TARGET_VARIABLE, raising=False)
    assert dbt_target(dbt_cli_resource()) == DBT_TARGET_DUCKDB
    monkeypatch.setenv(DBT_TARGET_VARIABLE, DBT_TARGET_SPARK)
    assert dbt_target(dbt_cli_resource()) == DBT_TARGET_SPARK
    explicit = dbt_cli_resource().model_copy(update={"target": DBT_TARGET_DUCKDB})
    assert dbt_target(explicit) == DBT_TARGET_DUCKDB


def test_the_in_process_parse_follows_the_command_lines_target():
    assert _target_arg(["build", "--select", "x", "--target", "spark"]) == "spark"
    assert _target_arg(["build", "--target"]) is None
    assert _target_arg(["build"]) is None
