"""DuckDB's one-writer rule under a real daemon: 30 day partitions launched at once.

A real `dagster-daemon` runs on a temporary DAGSTER_HOME with the instance config the platform
ships (run queue, `duckdb_warehouse` pool of one). `dagster job backfill` submits one run per day;
the daemon launches them as separate processes, several at a time. Without the pool their steps
would collide on the warehouse file with `Could not set lock on file`.
"""

import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fraud_demo.generator import GeneratorConfig, generate
from headwater.cli import EMBEDDED_INSTANCE_CONFIG, WORKSPACE
from headwater_core.dbt.resource import dbt_cli_resource
from headwater_core.resources import LandingZone, Warehouse
from tests.processes import stop_process_group

BIN = Path(sys.executable).parent
DAYS = 30


def _wait_for_runs(instance: dg.DagsterInstance, expected: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="daily_warehouse_job"))
        if len(runs) == expected and all(r.is_finished for r in runs):
            return runs
        time.sleep(2)
    raise AssertionError(
        f"backfill did not finish in {timeout:.0f}s: "
        + ", ".join(f"{r.tags.get('dagster/partition')}={r.status.value}" for r in runs)
    )


@pytest.mark.slow
def test_thirty_partitions_at_once_finish_without_a_lock_error(tmp_path):
    home = tmp_path / "headwater"
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(EMBEDDED_INSTANCE_CONFIG, dagster_home / "dagster.yaml")
    landing = home / "landing"
    duckdb_path = home / "warehouse.duckdb"
    generate(
        GeneratorConfig(seed=3, start_date=date(2025, 1, 1), days=DAYS, transactions=6_000),
        landing,
        progress=False,
    )
    env = {
        **os.environ,
        "HEADWATER_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "HEADWATER_DUCKDB_PATH": str(duckdb_path),
        "HEADWATER_LANDING_DIR": str(landing),
    }

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    # The unpartitioned layer first (snapshots, staging views, dims), as the sensor does.
    from data_platform.definitions import defs

    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    bootstrap = dg.materialize(
        assets,
        selection=[spec.key for a in assets for spec in a.specs if spec.partitions_def is None],
        instance=instance,
        resources={
            "warehouse": Warehouse(path=str(duckdb_path)),
            "landing": LandingZone(path=str(landing)),
            "dbt": dbt_cli_resource(),
        },
    )
    assert bootstrap.success

    # Only the backfill's runs: the landing sensor (on by default) would add a run per file.
    subprocess.run(
        [
            str(BIN / "dagster"),
            "sensor",
            "stop",
            "landing_sensor",
            "-w",
            str(WORKSPACE),
            "-l",
            "data_platform",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "daemon.log").open("w"),
        start_new_session=True,
    )
    try:
        subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "backfill",
                "-w",
                str(WORKSPACE),
                "-l",
                "data_platform",
                "-j",
                "daily_warehouse_job",
                "--from",
                "2025-01-01",
                "--to",
                f"2025-01-{DAYS:02d}",
                "--noprompt",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        runs = _wait_for_runs(instance, DAYS, timeout=1_200)
    finally:
        stop_process_group(daemon, timeout=60)

    failed = [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
    lock_errors = [
        entry.user_message
        for r in runs
        for entry in instance.all_logs(r.run_id)
        if "Could not set lock" in (entry.user_message or "")
        or "Could not set lock"
        in str(entry.dagster_event and entry.dagster_event.event_specific_data)
    ]
    assert not lock_errors, lock_errors[:3]
    assert not failed, [(r.tags.get("dagster/partition"), r.status.value) for r in failed]
    assert len({r.tags["dagster/partition"] for r in runs}) == DAYS

    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        raw, fact, days = con.execute(
            "select (select count(*) from raw.transactions), count(*), "
            "count(distinct transaction_date) from marts.fct_transactions"
        ).fetchone()
    finally:
        con.close()
    assert raw == fact and days == DAYS
