"""The only Dagster internals (`dagster._...`) the project uses, for what Dagster has no public
API for: playing simulated time through the real automation in one process, and telling run
monitoring that a run's process is gone.

- A frozen clock (`dagster._core.test_utils.freeze_time`). Dagster stamps every event (a run's
  materialisations and check results, a reported event, a freshness state change) with its own
  clock, and the conditions and freshness policies compare those stamps with the tick's time.
  `dg.evaluate_automation_conditions(evaluation_time=...)` takes a time, but nothing that writes
  an event does; freezing Dagster's clock is what makes a simulated day's events carry that
  day. Patching `time.time` or `datetime` instead would move every library's clock, not only
  Dagster's.
- Freshness evaluation as the freshness daemon does it (`FreshnessDaemon._evaluate_asset` on an
  `AssetGraphView.for_test` of the definitions): it records the freshness state changes that
  `AutomationCondition.freshness_failed()` reads. Dagster 1.13 runs it only inside its daemon.
- The answer a run launcher gives run monitoring about a run's worker (`CheckRunHealthResult`,
  `WorkerStatus`, from `dagster._core.launcher`): the public `DefaultRunLauncher` can be
  subclassed, but the type its health check returns is not exported (`run_launcher.py`).
- The SQLite event log (`SqliteEventLogStorage`), with its connections kept
  (`PooledSqliteEventLogStorage`, the embedded instance's event log): Dagster's own opens a new
  SQLAlchemy engine and SQLite connection for every event it writes, and compiles every
  statement anew in each, about 10 ms an asset event on 2 cores; a run writes hundreds. It also
  writes a planned check evaluation's rows (one per partition) with one serialisation of the
  event and one compiled statement, where Dagster's serialises the event again for each row
  and compiles a statement of all the rows' values: 43 ms a check of a 120-day range. Its
  connections sync the log at SQLite checkpoints, not at every commit (`synchronous=normal`).

Written for Dagster `DAGSTER_VERSION`, the version uv.lock pins.
tests/unit/test_dagster_internals.py fails, naming what changed, when another version is
installed or an internal is gone, so an upgrade of Dagster reviews this module first.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import dagster as dg
import sqlalchemy
from dagster._core.instance.ref import _event_logs_directory
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageMetadata,
)
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine, get_alembic_config
from sqlalchemy.pool import QueuePool

DAGSTER_VERSION = "1.13.27"

# (module, attribute path) of every internal used here.
INTERNALS = (
    ("dagster._core.test_utils", "freeze_time"),
    ("dagster._daemon.freshness", "FreshnessDaemon._evaluate_asset"),
    ("dagster._core.asset_graph_view.asset_graph_view", "AssetGraphView.for_test"),
    ("dagster._core.launcher", "CheckRunHealthResult"),
    ("dagster._core.launcher", "WorkerStatus"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SqliteEventLogStorage._connect"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SqliteEventLogStorage._initdb"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SQLITE_BUSY_TIMEOUT_SECONDS"),
    ("dagster._core.storage.sql", "create_engine"),
    ("dagster._core.instance.ref", "_event_logs_directory"),
    (
        "dagster._core.storage.event_log.sql_event_log",
        "SqlEventLogStorage._store_asset_check_evaluation_planned",
    ),
    ("dagster._core.storage.asset_check_execution_record", "AssetCheckExecutionRecordStatus"),
    ("dagster._core.storage.event_log.schema", "AssetCheckExecutionsTable"),
    ("dagster._core.storage.event_log.schema", "SqlEventLogStorageMetadata"),
    ("dagster._core.storage.sql", "get_alembic_config"),
)


def missing_internals() -> list[str]:
    """The internals in `INTERNALS` the installed Dagster lacks, as `module.attribute`."""
    missing = []
    for module_name, path in INTERNALS:
        try:
            found = importlib.import_module(module_name)
            for attribute in path.split("."):
                found = getattr(found, attribute)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{path}")
    return missing


def compatibility_problems() -> list[str]:
    """Why this adapter may not work with the installed Dagster; empty when it was written for
    it."""
    problems = []
    if dg.__version__ != DAGSTER_VERSION:
        problems.append(
            f"dagster {dg.__version__} is installed, but {__name__} was written for "
            f"{DAGSTER_VERSION}: check that the internals it uses still behave the same, then "
            "update DAGSTER_VERSION"
        )
    problems.extend(f"dagster has no {name} any more" for name in missing_internals())
    return problems


@contextmanager
def frozen_clock(at: datetime) -> Iterator[None]:
    """Dagster's clock stopped at `at` for the block: every event written meanwhile carries it."""
    from dagster._core.test_utils import freeze_time

    with freeze_time(at):
        yield


def evaluate_freshness(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Evaluate every freshness policy of `defs` now, as the freshness daemon's iteration does,
    recording each state change in `instance`."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
    from dagster._daemon.freshness import FreshnessDaemon

    view = AssetGraphView.for_test(defs, instance)
    daemon = FreshnessDaemon()
    nodes = [n for n in view.asset_graph.asset_nodes if n.freshness_policy is not None]

    async def evaluate_all():
        for node in nodes:
            await daemon._evaluate_asset(view, node)  # noqa: SLF001 - the daemon's own code

    asyncio.run(evaluate_all())


def worker_health(alive: bool, message: str):
    """What a run launcher's `check_run_worker_health` returns: the worker running, or failed."""
    from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

    return CheckRunHealthResult(WorkerStatus.RUNNING if alive else WorkerStatus.FAILED, message)


# Engines kept per process: the index shard and the newest run shards (a code server or the
# webserver reads many runs; each kept engine holds one open SQLite connection).
KEPT_SHARDS = 8

# Engines a forked child inherited: never used and never closed there, since closing a SQLite
# connection opened by another process can release that process's locks.
_INHERITED: list[Any] = []


# The table alembic keeps a database's migration revision in, as alembic creates it.
ALEMBIC_VERSION_DDL = (
    "CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n"
    "\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)"
)


@functools.cache
def event_log_head_revision() -> str:
    """The newest migration of Dagster's SQLite event log. Alembic finds it by reading every
    migration script, which Dagster's `_initdb` does twice for each new run's database (a
    check, then the stamp): about 75 ms of every run. Once per process here."""
    from alembic.script import ScriptDirectory

    config = get_alembic_config(sqlite_event_log.__file__)
    return ScriptDirectory.from_config(config).get_current_head()


@functools.cache
def event_log_ddl() -> tuple[str, ...]:
    """The statements that create a run database's tables and indexes, as SQLAlchemy's
    `create_all` issues them, compiled once per process (25 ms a run otherwise)."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect, statements = sqlite.dialect(), []
    for table in SqlEventLogStorageMetadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        statements += [str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes]
    return tuple(statements)


def _synchronous_normal(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("pragma synchronous=normal")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log (a database per run plus the index shard) in the instance's
    own folder, with one engine and one open connection kept per database file in each process.

    `SqliteEventLogStorage._connect` creates an engine with no pool for every connection, so
    each event pays a new SQLite connection, its close, and the compilation of its statements
    (SQLAlchemy caches compiled statements per engine): about 10 ms an asset event here, 2.6 ms
    with the engines kept. Everything else is Dagster's: the same files, schema, statements and
    transactions, and `_connect` still holds the storage's lock around each use, so a kept
    connection is used by one thread at a time and is idle (no open transaction) between uses.
    Other processes see each commit as before (SQLite's locking, not the pool, orders them).

    It takes no configuration: its folder is the default storage's (`history/runs` under the
    instance's root), learnt when the instance registers itself, so the same YAML serves every
    instance folder and an instance keeps its event logs when it switches to this class or back.
    """

    def __init__(self, inst_data: Any = None) -> None:
        # Dagster's constructor runs in `register_instance`, once the folder is known.
        self._inst_data = inst_data
        self._engines: OrderedDict[str, Any] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables_seen: set[str] = set()

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data)

    def register_instance(self, instance: Any) -> None:
        if not hasattr(self, "_base_dir"):
            # the folder Dagster gives its default event log under an instance's root
            folder = _event_logs_directory(instance.root_directory)
            SqliteEventLogStorage.__init__(self, folder, self._inst_data)
        super().register_instance(instance)

    def _engine(self, shard: str) -> Any:
        """The kept engine of `shard`, created (and the database initialised) on first use."""
        if self._engines_pid != os.getpid():  # a forked child: start afresh
            _INHERITED.extend(self._engines.values())
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                # `_initdb` inspects the new database through a second connection, closed after
                max_overflow=2,
                connect_args={
                    "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                    # one thread at a time (the lock), not always the one that connected
                    "check_same_thread": False,
                },
            )
            # Dagster keeps its event logs in WAL mode and leaves `synchronous` at FULL, an
            # fsync of the log at every commit: 0.6 ms here, two commits an asset event, about
            # 0.4 s of a new day's 366 events. NORMAL syncs at checkpoints only: a commit is
            # kept through a crash of any process, and can be lost (never corrupted) only when
            # the machine itself goes down. The production instance is on PostgreSQL.
            sqlalchemy.event.listen(engine, "connect", _synchronous_normal)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._engines[shard] = engine
            while len(self._engines) > KEPT_SHARDS:
                self._engines.popitem(last=False)[1].dispose()
        self._engines.move_to_end(shard)
        return engine

    def _initdb(self, engine: Any, for_index_shard: bool = False) -> None:
        """A run's database as Dagster's `_initdb` makes it: its tables, WAL mode and the
        alembic revision stamped at head, with the head found once per process
        (`event_log_head_revision`). A database already at head is left as it is. Anything
        else (the index shard, an older revision, another process creating the same file at
        once) goes to Dagster's own, which migrates and retries."""
        if not for_index_shard:
            head = event_log_head_revision()
            try:
                with engine.connect() as conn:
                    tables = set(sqlalchemy.inspect(conn).get_table_names())
                    if "alembic_version" in tables:
                        found = conn.exec_driver_sql("select version_num from alembic_version")
                        if [row[0] for row in found] == [head]:
                            return
                    elif not tables:
                        for statement in event_log_ddl():
                            conn.exec_driver_sql(statement)
                        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                        conn.exec_driver_sql(ALEMBIC_VERSION_DDL)
                        conn.exec_driver_sql(
                            "insert into alembic_version (version_num) values (?)", (head,)
                        )
                        conn.commit()
                        return
            except (sqlalchemy.exc.DatabaseError, sqlite3.DatabaseError):
                pass  # Dagster's `_initdb` retries what a concurrent creation raises
        super()._initdb(engine, for_index_shard=for_index_shard)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        with self._db_lock:
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def _dispose_engines(self) -> None:
        with self._db_lock:
            if self._engines_pid == os.getpid():
                for engine in self._engines.values():
                    engine.dispose()
            self._engines = OrderedDict()

    def has_table(self, table_name: str) -> bool:
        """Dagster asks this before every asset check event (`supports_asset_checks`), through a
        new engine each time. A migration only ever adds tables and a wipe keeps them, so a
        table once found is remembered; a missing one is asked again."""
        if table_name not in self._tables_seen and super().has_table(table_name):
            self._tables_seen.add(table_name)
        return table_name in self._tables_seen

    def _store_asset_check_evaluation_planned(self, event: Any, event_id: int | None) -> None:
        """The rows Dagster's own method writes, one per planned partition (a range run plans
        every check for each of its partitions), with the event serialised once and inserted
        by one `executemany` of one compiled statement. Dagster's serialises the event for every
        row and compiles an INSERT of all the rows' values, which no statement cache holds:
        3.5 s before the first step of a 120-day run with 81 planned checks."""
        planned = event.dagster_event.event_specific_data
        subset = planned.partitions_subset
        keys = subset.get_partition_keys() if subset else [None]
        shared = dict(
            asset_key=planned.asset_key.to_string(),
            check_name=planned.check_name,
            run_id=event.run_id,
            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
            evaluation_event=dg.serialize_value(event),
            evaluation_event_timestamp=self._event_insert_timestamp(event),
            evaluation_event_storage_id=event_id,
        )
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert(), [{**shared, "partition": k} for k in keys]
            )

    def wipe(self) -> None:
        self._dispose_engines()  # before the run shards' files are deleted
        super().wipe()

    def dispose(self) -> None:
        if hasattr(self, "_base_dir"):  # an instance that never registered has nothing open
            self._dispose_engines()
            super().dispose()
