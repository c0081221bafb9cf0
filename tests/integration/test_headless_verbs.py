"""The headless verbs through the real `headwater` command, against one state folder: a
selection (`materialize --select`), scoring a range without retraining (`score`), drift and
performance of a range in one run (`monitor`), and failures as one line.

The world is test_ml_lifecycle's (100 days: the fraud model needs labels matured 61 days), built
by `headwater materialize` with a selection that leaves the second model out.
"""

import os
import subprocess
import sys
from datetime import date

import dagster as dg
import duckdb
import pytest

from fraud_demo.generator import GeneratorConfig, generate
from ml_assets.models.tracking import CHAMPION, MlflowTracking

# A 100-day world and five headless commands: about 3.5 minutes, so the slow tier (the default
# tier stays under 15 minutes on 2 cores).
pytestmark = pytest.mark.slow

WORLD = GeneratorConfig(seed=11, start_date=date(2025, 1, 1), days=100, transactions=40_000)
FIRST, LAST = "2025-01-01", "2025-04-10"
FRAUD = "headwater.fraud_classifier"
HEADWATER = os.path.join(os.path.dirname(sys.executable), "headwater")


def _headwater(home, *args, env_extra=None) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEADWATER_", "DAGSTER_", "MLFLOW_"))
    }
    env.update(HEADWATER_HOME=str(home), **(env_extra or {}))
    return subprocess.run([HEADWATER, *args], env=env, capture_output=True, text=True, timeout=900)


def _query(home, sql):
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _runs(home) -> list:
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        return instance.get_run_records()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("verbs")
    generate(WORLD, home / "landing", progress=False)
    out = _headwater(
        home,
        "materialize",
        "--start",
        FIRST,
        "--end",
        LAST,
        "--select",
        '+key:"scores/fraud_classifier"',
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return home


def _set_versions(home, version: str, of: str) -> None:
    """Mark the scores rows of version `of` as scored by `version`."""
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        con.execute(
            "update scores.fraud_classifier set model_version = $1 where model_version = $2",
            [version, of],
        )
    finally:
        con.close()


def _tracking(home) -> MlflowTracking:
    return MlflowTracking(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")


def test_materialize_runs_only_the_selection(home):
    tracking = _tracking(home)
    assert tracking.version_by_alias(FRAUD, CHAMPION) is not None
    # the second model is not upstream of the fraud scores: never trained, never scored
    assert tracking.version_by_alias("headwater.customer_spend_30d", CHAMPION) is None
    tables = {t for (t,) in _query(home, "select table_name from duckdb_tables()")}
    assert "fraud_classifier" in tables and "customer_spend_30d" not in tables


def test_score_rewrites_only_its_range_and_never_trains(home):
    """Rows outside the range keep the version that scored them (here a marker, `old`); the
    range's rows are scored again by the champion; no model asset runs."""
    tracking = _tracking(home)
    champion = str(tracking.version_by_alias(FRAUD, CHAMPION).version)
    versions = len(tracking.client().search_model_versions(f"name = '{FRAUD}'"))
    _set_versions(home, "old", champion)
    runs = len(_runs(home))

    try:
        out = _headwater(
            home,
            *("score", "--start", "2025-04-01", "--end", "2025-04-03"),
            *("--model", "fraud_classifier"),
        )
        by_version = dict(
            _query(
                home,
                "select cast(event_time as date) between '2025-04-01' and '2025-04-03', "
                "string_agg(distinct model_version) from scores.fraud_classifier group by 1",
            )
        )
    finally:  # the other tests monitor days scored by the real version
        _set_versions(home, champion, "old")

    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert by_version == {True: champion, False: "old"}
    (in_range,) = _query(
        home,
        "select count(*) from features.transaction_features "
        "where transaction_date between '2025-04-01' and '2025-04-03'",
    )
    assert _query(
        home,
        "select count(*) from scores.fraud_classifier "
        "where cast(event_time as date) between '2025-04-01' and '2025-04-03'",
    ) == [in_range]
    assert len(tracking.client().search_model_versions(f"name = '{FRAUD}'")) == versions
    assert len(_runs(home)) == runs + 1
    # the run's table: one line per asset it materialised
    materialised = {
        line.split(" | ")[0][2:] for line in out.stdout.splitlines() if line[:2] == "| "
    }
    assert {"raw/transactions", "features/transaction_features", "scores/fraud_classifier"} <= (
        materialised
    )
    assert not {k for k in materialised if k.startswith(("models/", "monitoring/"))}


def test_monitor_measures_every_day_of_a_range_in_one_run(home):
    runs = len(_runs(home))

    out = _headwater(
        home,
        "monitor",
        "--start",
        "2025-01-20",
        "--end",
        "2025-02-03",
        "--model",
        "fraud_classifier",
    )

    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert len(_runs(home)) == runs + 1
    days = [f"2025-01-{d}" for d in range(20, 32)] + ["2025-02-01", "2025-02-02", "2025-02-03"]
    for table in ("drift", "performance"):
        measured = _query(
            home,
            f"select distinct cast(day as varchar) from monitoring.{table} "
            "where model = 'fraud_classifier' order by 1",
        )
        assert [d for (d,) in measured] == days, table
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        for role in ("drift", "performance"):
            key = dg.AssetKey(["monitoring", "fraud_classifier", role])
            materialized = instance.get_materialized_partitions(key)
            assert set(days) <= materialized, role
            # one day's own metadata, not the range's
            event = instance.get_latest_materialization_event(key)
            assert event.asset_materialization.partition == days[-1]
    assert "| monitoring/fraud_classifier/drift | " in out.stdout


def test_monitoring_a_range_with_nothing_scored_measures_nothing_and_succeeds(home):
    """Days after the world's last one are partitions with no scores (as a weekly model's
    other days are): skipped, and the checks still answer."""
    out = _headwater(
        home,
        *("monitor", "--start", "2025-04-20", "--end", "2025-04-21"),
        *("--model", "fraud_classifier"),
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    cells = {
        row[0]: row
        for row in (
            [c.strip() for c in line.split("|")][1:-1]
            for line in out.stdout.splitlines()
            if line.startswith("| monitoring/")
        )
    }
    # no day measured (no partition), and each check answered: passed
    assert cells["monitoring/fraud_classifier/performance"][2] == ""
    assert cells["monitoring/fraud_classifier/performance"][5] == "1"
    assert cells["monitoring/fraud_classifier/drift"][5] == "1"
    for table in ("drift", "performance"):
        exists = _query(
            home,
            "select count(*) from information_schema.tables "
            f"where table_schema = 'monitoring' and table_name = '{table}'",
        ) == [(1,)]
        if exists:  # an earlier test of the module may have measured other days
            assert _query(
                home, f"select count(*) from monitoring.{table} where day >= '2025-04-20'"
            ) == [(0,)]


def test_a_failing_command_prints_one_line(home):
    outside = _headwater(home, "score", "--start", "2024-06-01", "--end", "2024-06-02")
    assert outside.returncode == 1
    assert outside.stderr.startswith(
        "headwater score: 2024-06-01 is before the first partition 2025-01-01 "
        "(vars.headwater.partitions.start in "
    )
    assert outside.stderr.count("\n") == 1, outside.stderr

    unreachable = _headwater(
        home,
        "score",
        "--start",
        "2025-04-01",
        "--end",
        "2025-04-02",
        env_extra={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(
        "headwater score: MLflow tracking server http://127.0.0.1:9 is unreachable"
    )
    assert unreachable.stderr.count("\n") == 1, unreachable.stderr
