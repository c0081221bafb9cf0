"""The embedded instance's event log (`PooledSqliteEventLogStorage`): Dagster's SQLite files,
with one connection kept per file and process. What keeping connections could break, checked
on a real instance: runs and their events read back whole, another process's writes seen by a
process holding connections to the same files, the number of kept files bounded, a wipe
that deletes the files under them, and a range run's planned checks written as Dagster writes
them.
"""

import os
import subprocess
import sys
import textwrap

import dagster as dg
import sqlalchemy as sa

from headwater.dagster_internals import (
    KEPT_SHARDS,
    PooledSqliteEventLogStorage,
    event_log_head_revision,
)

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-06")


@dg.asset(partitions_def=DAYS)
def daily_rows(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info(f"building {context.partition_key}")
    return dg.MaterializeResult(metadata={"day": context.partition_key})


@dg.asset_check(asset=daily_rows)
def daily_rows_present() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def range_rows(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"first": context.partition_key_range.start})


@dg.asset_check(asset=range_rows)
def range_rows_present() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _materialize(instance, partition_key: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [daily_rows, daily_rows_present], instance=instance, partition_key=partition_key
    )


def _materialized_days(instance) -> list[str]:
    records = instance.fetch_materializations(daily_rows.key, limit=100).records
    return sorted(r.partition_key for r in records)


def test_the_embedded_instance_keeps_dagsters_files_and_reads_every_event(instance):
    storage = instance.event_log_storage
    assert isinstance(storage, PooledSqliteEventLogStorage)
    # the default SQLite storage's folder: an existing instance keeps its history
    assert storage._base_dir.endswith("/history/runs")

    results = [_materialize(instance, f"2026-01-0{day}") for day in range(1, 6)]
    assert all(r.success for r in results)
    for result in results:
        types = [e.dagster_event_type for e in instance.all_logs(result.run_id) if e.dagster_event]
        for expected in (
            dg.DagsterEventType.RUN_SUCCESS,
            dg.DagsterEventType.ASSET_MATERIALIZATION,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        ):
            assert types.count(expected) == 1, (result.run_id, expected, types)
    assert _materialized_days(instance) == [f"2026-01-0{day}" for day in range(1, 6)]
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [daily_rows_present.check_keys.pop()]
    )
    assert len(check) == 1
    # the index shard and at most the newest run shards stay open
    assert len(storage._engines) <= KEPT_SHARDS
    # the check table, found once, is remembered; a missing table is not
    assert storage.has_table("asset_check_executions") and storage.has_table("event_logs")
    assert not storage.has_table("no_such_table")
    assert {"asset_check_executions", "event_logs"} <= storage._tables_seen
    assert "no_such_table" not in storage._tables_seen
    # every kept file in Dagster's WAL mode, synced at checkpoints, not at each commit
    for engine in storage._engines.values():
        with engine.connect() as conn:
            assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL


def test_another_processs_run_is_seen_through_kept_connections(instance):
    """A run of another process, written while this one holds connections to the same index
    file, is read here at once: a kept connection holds no snapshot between uses."""
    _materialize(instance, "2026-01-01")
    assert _materialized_days(instance) == ["2026-01-01"]
    assert instance.event_log_storage._engines  # connections held while the other one writes

    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS],
        env=_env(instance),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _materialized_days(instance) == ["2026-01-01", "2026-01-02"]


def test_a_wipe_deletes_the_run_files_and_later_runs_still_land(instance):
    first = _materialize(instance, "2026-01-01")
    instance.event_log_storage.wipe()
    assert instance.all_logs(first.run_id) == []
    assert _materialized_days(instance) == []

    second = _materialize(instance, "2026-01-03")
    assert second.success
    assert _materialized_days(instance) == ["2026-01-03"]


def test_the_event_log_lives_in_the_folder_of_the_instance_that_loads_it(tmp_path, monkeypatch):
    """The storage takes no folder from the YAML or the environment: an instance loaded from
    any folder, with no DAGSTER_HOME set, writes its event logs under that folder."""
    import shutil

    from headwater.environment import EMBEDDED_INSTANCE_CONFIG

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    shutil.copyfile(EMBEDDED_INSTANCE_CONFIG, folder / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        result = _materialize(instance, "2026-01-04")
        assert result.success
        assert (folder / "history" / "runs" / f"{result.run_id}.db").exists()
        assert _materialized_days(instance) == ["2026-01-04"]
    # a second instance on the same folder (another process, a restart) reads the same history
    with dg.DagsterInstance.from_config(str(folder)) as again:
        assert _materialized_days(again) == ["2026-01-04"]


def test_a_range_runs_planned_checks_are_the_rows_dagster_writes(instance):
    """One planned check of a range run is a row per partition. The storage writes them with
    one serialisation and one statement; the rows must be Dagster's own, column for column."""
    result = dg.materialize(
        [range_rows, range_rows_present],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-01-01",
            "dagster/asset_partition_range_end": "2026-01-04",
        },
    )
    assert result.success
    storage = instance.event_log_storage
    planned = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
    ).records
    assert len(planned) == 1
    event, event_id = planned[0].event_log_entry, planned[0].storage_id

    def take_rows() -> list[tuple]:
        """The run's planned-check rows, removed so that the next write starts from none."""
        with storage.index_connection() as conn:
            found = conn.execute(sa.text(PLANNED_ROWS), {"run_id": result.run_id}).fetchall()
            conn.execute(sa.text(DELETE_ROWS), {"run_id": result.run_id})
        return [tuple(row) for row in found]

    take_rows()  # the run's own rows, already evaluated
    super(PooledSqliteEventLogStorage, storage)._store_asset_check_evaluation_planned(
        event, event_id
    )
    dagsters = take_rows()
    storage._store_asset_check_evaluation_planned(event, event_id)
    ours = take_rows()
    assert [row[2] for row in ours] == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    assert ours == dagsters


def _database(engine) -> tuple:
    """A SQLite file's schema (every table and index, as created), journal mode and alembic
    revision."""
    with engine.connect() as conn:
        schema = conn.exec_driver_sql("select type, name, tbl_name, sql from sqlite_master")
        return (
            sorted(tuple(row) for row in schema),
            conn.exec_driver_sql("pragma journal_mode").scalar(),
            conn.exec_driver_sql("select version_num from alembic_version").fetchall(),
        )


def test_a_runs_database_is_the_one_dagster_creates(instance, tmp_path, monkeypatch):
    """A new run's database is created without alembic reading its migration scripts twice
    (`_initdb`): its tables, indexes, WAL mode and stamped revision must be those of Dagster's
    own `_initdb`, and Dagster's check of the revision must find it at head."""
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from dagster._core.storage.sql import check_alembic_revision, get_alembic_config

    result = _materialize(instance, "2026-01-01")
    storage = instance.event_log_storage
    ours = storage._engine(result.run_id)

    dagsters = SqliteEventLogStorage(str(tmp_path / "dagsters"))
    engine = sa.create_engine(dagsters.conn_string_for_shard("a_run"))
    dagsters._initdb(engine)
    assert _database(ours) == _database(engine)
    assert _database(ours)[1:] == ("wal", [(event_log_head_revision(),)])
    with ours.connect() as conn:
        found, head = check_alembic_revision(get_alembic_config(sqlite_event_log.__file__), conn)
    assert found == head == event_log_head_revision()

    # a database at another revision is left to Dagster's `_initdb`, which migrates it
    with ours.connect() as conn:
        conn.exec_driver_sql("update alembic_version set version_num = 'older'")
        conn.commit()
    seen = []
    original = SqliteEventLogStorage._initdb

    def dagsters_initdb(self, engine, for_index_shard=False):
        seen.append(engine.url.database)
        with engine.connect() as conn:  # at head again, as a migration would leave it
            conn.exec_driver_sql(
                "update alembic_version set version_num = ?", (event_log_head_revision(),)
            )
            conn.commit()
        return original(self, engine, for_index_shard)

    monkeypatch.setattr(SqliteEventLogStorage, "_initdb", dagsters_initdb)
    storage._initdb(ours)
    assert seen == [ours.url.database]
    assert _database(ours) == _database(engine)


PLANNED_ROWS = """
    select asset_key, check_name, partition, execution_status, evaluation_event,
           evaluation_event_timestamp, evaluation_event_storage_id,
           materialization_event_storage_id
    from asset_check_executions where run_id = :run_id order by partition
"""
DELETE_ROWS = "delete from asset_check_executions where run_id = :run_id"


def _env(instance) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": instance.root_directory}


# A second process: the same instance (from its DAGSTER_HOME), one run of this module's asset.
OTHER_PROCESS = textwrap.dedent(
    f"""
    import importlib.util
    import dagster as dg
    spec = importlib.util.spec_from_file_location("storage_test", {__file__!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._materialize(dg.DagsterInstance.get(), "2026-01-02").success
    """
)
