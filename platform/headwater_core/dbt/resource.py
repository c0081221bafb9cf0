"""The dbt resource both code locations run dbt with, and `run_dbt`, the one way an asset runs
dbt: a private target folder per invocation, the warehouse path handed to dbt's profile, and row
counts and previews read after dbt exits.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from packaging import version

from headwater_core.config import environ
from headwater_core.dbt.in_process import DBT_LOCK, cli_in_process
from headwater_core.dbt.project import dbt_executable, dbt_project, target_dir
from headwater_core.metadata import table_stats
from headwater_core.names import (
    DBT_TARGET_DUCKDB,
    DBT_TARGET_VARIABLE,
    PARTITION_COLUMN_METADATA,
)
from headwater_core.resources import Warehouse


class HeadwaterDbtCli(DbtCliResource):
    """dagster-dbt's dbt CLI resource, minus two start-ups of dbt per invocation.

    dagster-dbt asks the dbt executable for its version on every `cli()` call, which costs a
    full dbt start-up (~3 s here). The dbt we run is the dbt-core installed beside this
    interpreter, so its package metadata answers the same question for free. It also builds a
    dbt adapter handle per call that nothing here reads (below). And with
    `in_process` (the default) dbt runs in the step's own process, parsed once per process,
    instead of in a new `dbt` process per invocation (headwater_core/dbt/in_process.py); false
    runs dagster-dbt's subprocess unchanged.
    """

    in_process: bool = True

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        """No adapter handle: dagster-dbt builds one on every `cli()` call (a profile, project
        and macro load, ~1.5 s of a day's run here) only for `fetch_row_counts` and
        `fetch_column_metadata`, which `run_dbt` does not use (it reads row counts itself,
        after dbt has released the file)."""
        return None

    def cli(self, args, **kwargs):
        if self.in_process:
            return cli_in_process(self, args, **kwargs)
        return super().cli(args, **kwargs)


def dbt_cli_resource() -> DbtCliResource:
    """dbt over the configured project (resolved when a code location loads)."""
    return HeadwaterDbtCli(project_dir=dbt_project(), dbt_executable=dbt_executable())


def dbt_target(dbt: DbtCliResource) -> str:
    """The profiles.yml output a run uses: the resource's `target`, else $HEADWATER_DBT_TARGET
    (read when the run starts), else the DuckDB one, as dbt itself chooses."""
    return dbt.target or os.environ.get(DBT_TARGET_VARIABLE) or DBT_TARGET_DUCKDB


def run_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    args: list[str],
    window: tuple[str, str] | None = None,
    **cli_options: Any,
) -> Iterator[Any]:
    """Run a dbt command for the selected assets and enrich each model's result with row counts.
    `cli_options` go to `DbtCliResource.cli` (an op outside `@dbt_assets` passes its manifest).

    Row counts are read after dbt exits, not streamed while it runs (dagster-dbt's
    `fetch_row_counts`), because DuckDB lets only one process open the file while dbt writes it.
    """
    # dbt unit tests check SQL logic, not data: the test suite runs them, production runs skip them.
    # No JSON artifacts: the invocation's target folder is deleted once its events are read, and
    # dbt wrote the whole manifest (1 MB) there on every invocation.
    args = [*args, "--exclude-resource-type", "unit_test", "--no-write-json"]
    events, failure = _invoke(context, dbt, warehouse, args, cli_options)
    if dbt_target(dbt) != DBT_TARGET_DUCKDB:
        # The models were built elsewhere (Spark): the DuckDB file's tables of the same names
        # are not what this run wrote, so no row counts rather than wrong ones.
        yield from events
        if failure is not None:
            raise failure
        return
    with warehouse.connect(read_only=True) as con:
        for event in events:
            if isinstance(event, dg.Output):
                event = _with_table_stats(context, con, event, window)
            yield event
    if failure is not None:
        raise failure


def _invoke(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    args: list[str],
    cli_options: dict[str, Any],
) -> tuple[list[Any], DagsterDbtCliRuntimeError | None]:
    """dbt's events for `args`, and dbt's failure if it failed, once dbt has finished."""
    # Each invocation gets its own target folder (so concurrent runs never share one), removed
    # once its events are read; dagster-dbt copies the project's partial-parse file into it.
    targets = target_dir(dbt.project_dir)
    targets.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="run-", dir=targets))
    parse_state = _partial_parse_state(targets, warehouse, args, getattr(dbt, "in_process", False))
    events: list[Any] = []
    failure: DagsterDbtCliRuntimeError | None = None
    try:
        if parse_state is not None and parse_state.exists():
            shutil.copyfile(parse_state, target / PARTIAL_PARSE_FILE)
        # dbt's profile reads the warehouse file from the variable the resource also reads;
        # dagster-dbt copies the environment for dbt in `cli`, so the lock keeps another
        # thread's warehouse out of it.
        # Its DuckDB settings (profiles.yml `settings`) come from the resource the same way.
        variables = {
            "HEADWATER_DUCKDB_PATH": str(warehouse.resolved_path()),
            "DBT_INDIRECT_SELECTION": indirect_selection(),
        }
        with DBT_LOCK, environ({**variables, **warehouse.duckdb_settings()}):
            invocation = dbt.cli(args, context=context, target_path=target, **cli_options)
        try:
            events.extend(invocation.stream())
        except DagsterDbtCliRuntimeError as error:
            # dbt failed (a test, a model): what did run is still reported, with its row
            # counts and its checks, before the step fails with dbt's message.
            failure = error
        if parse_state is not None and (target / PARTIAL_PARSE_FILE).exists():
            # os.replace is atomic: concurrent runs leave one whole file, never a torn one.
            staged = target / f"{PARTIAL_PARSE_FILE}.keep"
            shutil.copyfile(target / PARTIAL_PARSE_FILE, staged)
            os.replace(staged, parse_state)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    return events, failure


def indirect_selection() -> str:
    """Which tests a selection of models runs (dbt's DBT_INDIRECT_SELECTION, unless the user set
    it): `buildable`, a test whose models are all selected or upstream of a selected one. dbt's
    default, `eager`, also runs a test that reads a model the run does not build: a run of the
    dimensions alone would run the facts' `relationships` tests, against facts not built yet.
    dagster-dbt still sets `empty` for a selection that leaves out some of a model's checks."""
    return os.environ.get("DBT_INDIRECT_SELECTION") or "buildable"


def _with_table_stats(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    output: dg.Output,
    window: tuple[str, str] | None,
) -> dg.Output:
    """A model's output with its table's row count and preview (per partition with a window)."""
    key = context.asset_key_for_output(output.output_name)
    table = ".".join(key.path)
    date_column = None
    if window:
        props = context.assets_def.metadata_by_key.get(key, {})
        date_column = props.get(PARTITION_COLUMN_METADATA)
    try:
        stats = table_stats(con, table, date_column, window)
        stats["preview"] = dg.MetadataValue.md(stats["preview"])
    except Exception as e:  # an ephemeral model or a missing relation has no stats
        context.log.debug(f"no stats for {table}: {e}")
        stats = {}
    return output.with_metadata({**output.metadata, **stats})


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def _partial_parse_state(
    targets: Path, warehouse: Warehouse, args: list[str], in_process: bool
) -> Path | None:
    """Where runs against this warehouse keep dbt's partial-parse state (None: not reusable).

    dbt re-parses the whole project (~2 s) unless the saved state was made with the same profile
    *values*, and the warehouse path is one of them: the state `ensure_manifest` leaves in
    target/ was parsed with the default path, so dagster-dbt's copy of it never applies to a run
    against the resource's file. Each warehouse file gets its own state, refreshed by every run
    that parsed. In a subprocess, a run with `--vars` (the daily window) changes dbt's vars hash,
    so it parses in full and its state is of no use to the next window; in process, the parse
    never has vars (headwater_core/dbt/in_process.py).
    """
    if "--vars" in args and not in_process:
        return None
    path = str(warehouse.resolved_path())
    return targets / f"{PARTIAL_PARSE_FILE}.{hashlib.sha256(path.encode()).hexdigest()[:12]}"
