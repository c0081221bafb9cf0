"""dbt run inside the step's own process instead of a `dbt` subprocess.

dagster-dbt starts a new `dbt` process for every invocation, which pays dbt's imports (~2.8 s on
2 cores) and a parse of the project (1-2 s) before the first model runs; a day through the graph
has three invocations, so that fixed cost was most of a new day's time (docs/benchmarks.md).
Here the invocation runs through dbt's Python API (`dbtRunner`) in the process that runs the
step, which has imported dbt already (dagster-dbt builds an adapter handle in-process), with the
project parsed once per process and passed to every later invocation.

Everything else stays dagster-dbt's: the selection it computes from the step's context, the
environment and target folder it prepares, and the reading of dbt's structured events into
Dagster events. `cli_in_process` runs a copy of dagster-dbt's public `DbtCliResource.cli` in
which, and only in which, the name `DbtCliInvocation` stands for `_InProcessInvocations`: where
`cli` would start the dbt process (`DbtCliInvocation.run`), dbt runs here to the end, and the
invocation is built with `DbtCliInvocation`'s own constructor around the finished run, whose
events it reads, as JSON lines, exactly as it would read a finished process's output. Nothing
of dagster-dbt is changed, so other threads, and `HeadwaterDbtCli(in_process=False)`, see
dagster-dbt as installed.

What this assumes of dagster-dbt, dbt-core and dbt-duckdb beyond their public API is written
down in tests/unit/test_dbt_adapter.py, which checks it against the versions below.
"""

from __future__ import annotations

import functools
import io
import json
import os
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliInvocation, DbtCliResource

from headwater_core.config import environ
from headwater_core.dbt.project import newest_input_mtime
from headwater_core.names import DBT_TARGET_VARIABLE

# The versions this adapter was written against. tests/unit/test_dbt_adapter.py fails on any
# other: re-check what it lists against the new versions, then update these.
DAGSTER_DBT_VERSION = "0.29.27"
DBT_CORE_VERSION = "1.11.16"
DBT_DUCKDB_VERSION = "1.11.1"

# dbt keeps its flags, adapters and event logger in process-wide registries and reads its
# settings from os.environ, so one dbt invocation at a time runs in this process: dagster-dbt's
# adapter handle, the run and the release of the warehouse file. Reentrant: `run_dbt` holds it
# around the environment it sets for the invocation.
DBT_LOCK = threading.RLock()

# Parsed projects of this process: `_parse_key` -> Manifest.
_MANIFESTS: dict[tuple, Any] = {}

# Settings dbt reads when it connects or runs, never into the parsed manifest: left out of the
# parse's key, because the resource sets them per invocation and a compile does not.
RUN_ONLY_SETTINGS = frozenset(
    {"HEADWATER_DUCKDB_THREADS", "HEADWATER_DUCKDB_MEMORY_LIMIT", "HEADWATER_DBT_THREADS"}
)


class FinishedDbt:
    """What `DbtCliInvocation` reads of its dbt process, for a dbt run that already ended."""

    def __init__(self, args: Sequence[str], lines: list[str], returncode: int) -> None:
        self.args = list(args)
        self.stdout = io.BytesIO("".join(f"{line}\n" for line in lines).encode())
        self.returncode = returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode

    def send_signal(self, signal: int) -> None:
        """Nothing to interrupt: the run has ended by the time anybody could ask."""


def _close_duckdb() -> None:
    """Release the warehouse file. dbt-duckdb keeps its database open in a class-level
    environment after a run, and DuckDB refuses another connection to the same file with other
    settings (the read-only one that reads row counts next) while one is open in the process."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    try:
        environment = DuckDBConnectionManager.env()
    except Exception:  # dbt-duckdb's only answer when no run has opened the database
        return
    # Forgets the environment (dbt-duckdb's exit hook), so the next run opens a new one ...
    DuckDBConnectionManager.close_all_connections()
    # ... and closes its database now rather than when it is garbage-collected.
    environment.close()


def _parse_key(project_dir: Path, target_name: str | None) -> tuple:
    """What a parse of the project depends on, besides the project's files:
    - the target: models configure themselves per engine at parse time
      (macros/cross_db/incremental.sql), so a DuckDB parse must not serve a Spark run;
    - the warehouse file's name, which dbt-duckdb makes the database of every relation; not
      its folder, so that the online asset's compile against a scratch file of the same name
      reuses the run's parse (a parse is 1.5-2 s);
    - every other HEADWATER_ setting, which `env_var()` may read at parse time (the label
      maturity days in the features' config, a Spark schema), but those read only to run."""
    settings = {
        name: Path(value).name if name == "HEADWATER_DUCKDB_PATH" else value
        for name, value in os.environ.items()
        if name.startswith("HEADWATER_") and name not in RUN_ONLY_SETTINGS
    }
    return (
        str(project_dir),
        target_name or os.environ.get(DBT_TARGET_VARIABLE, ""),
        tuple(sorted(settings.items())),
        newest_input_mtime(project_dir),
    )


def _manifest(project_dir: Path, target_path: Path, target_name: str | None = None) -> Any:
    """The parsed project, once per process and `_parse_key`, and again when a model, macro or
    yml changed. The parse has no vars: the daily window is read when models run, not when
    they are parsed."""
    from dbt.cli.main import dbtRunner

    target = ["--target", target_name] if target_name else []
    key = _parse_key(project_dir, target_name)
    if key not in _MANIFESTS:
        result = dbtRunner().invoke(
            ["parse", "--quiet", "--target-path", str(target_path), *target]
        )
        if not result.success:
            raise RuntimeError(f"dbt parse failed in {project_dir}: {result.exception}")
        _MANIFESTS.clear()
        _MANIFESTS[key] = result.result
    return _MANIFESTS[key]


def _target_arg(args: Sequence[str]) -> str | None:
    """The `--target` of a dbt command line (dagster-dbt adds the resource's), or None."""
    args = list(args)
    for i, arg in enumerate(args[:-1]):
        if arg == "--target":
            return args[i + 1]
    return None


def _error_line(exception: BaseException) -> str:
    """dbt's exception as an error-level log line: dagster-dbt collects those into the step's
    failure message."""
    info = {"level": "error", "msg": str(exception), "name": "MainEncounteredError"}
    return json.dumps({"info": info, "data": {}})


# Events dagster-dbt reads at any level: the node results it turns into materialisations and
# check results (DbtCoreCliEventMessage.is_result_event), and JinjaLogInfo, which carries its
# column metadata.
READ_AT_ANY_LEVEL = frozenset(
    {"LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult", "JinjaLogInfo"}
)


def printed(level: str, name: str) -> bool:
    """Whether an event of dbt's is one of its process's output lines: what dbt prints at its
    default log level (info and above) and whatever dagster-dbt reads. Debug events (each SQL
    statement, connection, timing: most of a run's events) only go to dbt's log file. Each line
    is encoded here, decoded by dagster-dbt and echoed to the step's output: passing the debug
    events too cost a new day ~3 s (docs/benchmarks.md)."""
    return level != "debug" or name in READ_AT_ANY_LEVEL


def run_dbt_in_process(
    args: Sequence[str], env: Mapping[str, str], project_dir: Path, target_path: Path
) -> FinishedDbt:
    """Run `dbt <args>` (args without the executable) here; its events as dbt's JSON log lines."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    lines: list[str] = []

    def collect(event) -> None:
        if printed(event.info.level, event.info.name):
            lines.append(json.dumps(msg_to_dict(event)))

    # The environment a dbt subprocess would have had (dagster-dbt's DBT_* settings and the
    # warehouse path): dbt reads its flags and `env_var()` from os.environ.
    with DBT_LOCK, environ(env):
        try:
            manifest = _manifest(project_dir, target_path, _target_arg(args))
            # The events reach the callback only. Neither of dbt's own loggers: its console
            # logger (even with --quiet) and its log file encode every event, debug ones
            # included, as JSON before they filter by level (a fifth of dbt's node threads'
            # time), and the file would go to the invocation's target folder, which `run_dbt`
            # deletes once it has read the events. No colours: dbt's messages end up in the
            # step's failure text.
            result = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(
                [*args, "--log-level", "none", "--log-level-file", "none", "--no-use-colors"]
            )
        finally:
            _close_duckdb()
    if result.exception is not None:
        lines.append(_error_line(result.exception))
    returncode = 0 if result.success else (2 if result.exception else 1)
    return FinishedDbt(args, lines, returncode)


class _InProcessInvocations:
    """What the copy of `DbtCliResource.cli` calls under the name `DbtCliInvocation`."""

    @staticmethod
    def run(
        *, args: Sequence[str], env: dict[str, str], dbt_project=None, **fields: Any
    ) -> DbtCliInvocation:
        """`DbtCliInvocation.run` with dbt run here: the other keywords of `run` are the
        invocation's own fields, passed to its constructor unchanged."""
        # args[0] is the dbt executable dagster-dbt would have started.
        # A finished run in place of the `subprocess.Popen` the field is declared as.
        process: Any = run_dbt_in_process(
            args[1:], env, fields["project_dir"], fields["target_path"]
        )
        return DbtCliInvocation(process=process, project=dbt_project, **fields)


@functools.cache
def _in_process_cli() -> Callable[..., DbtCliInvocation]:
    """dagster-dbt's `DbtCliResource.cli` with its own globals, in which `DbtCliInvocation` is
    `_InProcessInvocations`: the same code, with dagster-dbt's module left as it is."""
    cli = DbtCliResource.cli
    copy = types.FunctionType(
        cli.__code__,
        {**cli.__globals__, "DbtCliInvocation": _InProcessInvocations},
        cli.__name__,
        cli.__defaults__,
        cli.__closure__,
    )
    copy.__kwdefaults__ = cli.__kwdefaults__
    copy.__qualname__ = cli.__qualname__
    return copy


def cli_in_process(
    resource: DbtCliResource, args: Sequence[str], **kwargs: Any
) -> DbtCliInvocation:
    """`resource.cli(args, **kwargs)` with dbt run in this process, to the end."""
    with DBT_LOCK:
        return _in_process_cli()(resource, args, **kwargs)
