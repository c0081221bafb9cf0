"""How the dbt project becomes Dagster assets; shared by both code locations.

One vocabulary: a model at `models/<layer>/.../<name>.sql` is the DuckDB table `<layer>.<name>`
(macros/generate_schema_name.sql) and the Dagster asset `<layer>/<name>` in group `<layer>`
(`HeadwaterDbtTranslator`). dbt sources carry `meta.dagster.asset_key`, pointing at the raw
assets, so the graph runs from raw files to marts with no gap.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
)
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from packaging import version

from data_platform.dbt_in_process import in_process_invocations
from data_platform.freshness import freshness_policy
from data_platform.resources import Warehouse
from data_platform.settings import DBT_PROJECT_DIR, environ

DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# DbtProject.target_path is relative ("target"); everything here uses the absolute folder, so
# nothing lands in whatever the current directory happens to be.
TARGET_DIR = Path(DBT_PROJECT.project_dir) / DBT_PROJECT.target_path

# Files whose change means the manifest must be parsed again.
_DBT_INPUTS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")


def newest_input_mtime(project_dir: Path) -> float:
    newest = max(
        (project_dir / name).stat().st_mtime for name in ("dbt_project.yml", "profiles.yml")
    )
    for folder in _DBT_INPUTS:
        for path in (project_dir / folder).rglob("*"):
            if path.suffix in (".sql", ".yml", ".yaml", ".csv", ".md"):
                newest = max(newest, path.stat().st_mtime)
    # A file deleted from a folder changes the folder's mtime.
    for folder in _DBT_INPUTS:
        for path in [project_dir / folder, *(project_dir / folder).rglob("*/")]:
            if path.is_dir():
                newest = max(newest, path.stat().st_mtime)
    return newest


def ensure_manifest(project: DbtProject = DBT_PROJECT) -> Path:
    """Parse the dbt project if its manifest is missing or older than any model, macro or yml.

    This is what makes an analyst's new or edited model appear in the UI on reload with no
    Python change. A lock file keeps the two code locations, which load at the same time, from
    parsing into one target folder at once.
    """
    target = Path(project.project_dir) / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = project.manifest_path
        if not manifest.exists() or manifest.stat().st_mtime < newest_input_mtime(
            project.project_dir
        ):
            _dbt_parse(project)
    return project.manifest_path


def _dbt_executable() -> str:
    """dbt as installed beside this interpreter, whether or not the virtualenv is activated."""
    return str(Path(sys.executable).parent / "dbt")


def _dbt_parse(project: DbtProject) -> None:
    result = subprocess.run(
        [
            _dbt_executable(),
            "parse",
            "--quiet",
            "--project-dir",
            str(project.project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            "--target-path",
            str(project.target_path),
        ],
        cwd=project.project_dir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        # An analyst's broken model: show dbt's own message where the location fails to load.
        raise RuntimeError(
            f"dbt parse failed in {project.project_dir}:\n{result.stdout}{result.stderr}"
        )


def dbt_layer(dbt_resource_props: Mapping[str, Any]) -> str | None:
    """The top-level folder under models/ (staging, intermediate, marts, features, ...)."""
    fqn = dbt_resource_props.get("fqn", [])
    if dbt_resource_props.get("resource_type") in ("model", "seed", "snapshot") and len(fqn) > 2:
        return fqn[1]
    return None


class HeadwaterDbtTranslator(DagsterDbtTranslator):
    """dbt folder = DuckDB schema = Dagster group = first part of the asset key."""

    def __init__(self) -> None:
        # dbt's source tests stay plain dbt tests: as Dagster checks on the raw assets they would
        # pull a dbt op into every run that materialises a raw asset. Ingestion enforces the same
        # contract and reports it with the raw assets' own check.
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_code_references=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        layer = dbt_layer(dbt_resource_props)
        if layer is None:  # sources: `meta.dagster.asset_key` points at the raw asset
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([layer, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_layer(dbt_resource_props) or super().get_group_name(dbt_resource_props)

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        policy = freshness_policy(props.get("meta", {}).get("headwater_freshness"))
        return spec.replace_attributes(freshness_policy=policy) if policy else spec

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        # Daily models name the date column their partition window filters on
        # (`meta.headwater.partition_column`); row counts per partition read it.
        headwater = dbt_resource_props.get("meta", {}).get("headwater", {})
        if "partition_column" in headwater:
            metadata["headwater/partition_column"] = headwater["partition_column"]
        return metadata


TRANSLATOR = HeadwaterDbtTranslator()


class HeadwaterDbtCli(DbtCliResource):
    """dagster-dbt's dbt CLI resource, minus two start-ups of dbt per invocation.

    dagster-dbt asks the dbt executable for its version on every `cli()` call, which costs a
    full dbt start-up (~3 s here). The dbt we run is the dbt-core installed beside this
    interpreter, so its package metadata answers the same question for free. And with
    `in_process` (the default) dbt runs in the step's own process, parsed once per process,
    instead of in a new `dbt` process per invocation (data_platform/dbt_in_process.py); false
    runs dagster-dbt's subprocess unchanged.
    """

    in_process: bool = True

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def cli(self, args, **kwargs):
        if not self.in_process:
            return super().cli(args, **kwargs)
        with in_process_invocations():
            return super().cli(args, **kwargs)


def dbt_cli_resource() -> DbtCliResource:
    return HeadwaterDbtCli(project_dir=DBT_PROJECT, dbt_executable=_dbt_executable())


def markdown_preview(columns: list[str], rows: list[tuple], limit: int = 5) -> str:
    """A small markdown table, the preview the Dagster UI shows in an asset's metadata."""

    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|")

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "\n".join("| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:limit])


def table_stats(
    con: Any, table: str, date_column: str | None = None, window: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Row count (and the partition's row count) plus a preview of a warehouse table."""
    (rows,) = con.execute(f"select count(*) from {table}").fetchone()
    # The `dagster/` keys are the ones the UI shows as row counts and plots over time.
    metadata: dict[str, Any] = {"dagster/row_count": rows, "dagster/table_name": table}
    where = ""
    if date_column and window:
        where = f" where {date_column} >= date '{window[0]}' and {date_column} < date '{window[1]}'"
        (in_window,) = con.execute(f"select count(*) from {table}{where}").fetchone()
        metadata["dagster/partition_row_count"] = in_window
    result = con.execute(f"select * from {table}{where} limit 5")
    columns = [d[0] for d in result.description]
    metadata["preview"] = dg.MetadataValue.md(markdown_preview(columns, result.fetchall()))
    return metadata


def run_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    args: list[str],
    window: tuple[str, str] | None = None,
) -> Iterator[Any]:
    """Run a dbt command for the selected assets and enrich each model's result with row counts.

    Row counts are read after dbt exits, not streamed while it runs (dagster-dbt's
    `fetch_row_counts`), because DuckDB lets only one process open the file while dbt writes it.
    """
    # dbt unit tests check SQL logic, not data: the test suite runs them, production runs skip them.
    args = [*args, "--exclude-resource-type", "unit_test"]
    # Each invocation gets its own target folder (so concurrent runs never share one), removed
    # once its events are read; dagster-dbt copies the project's partial-parse file into it.
    TARGET_DIR.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="run-", dir=TARGET_DIR))
    parse_state = _partial_parse_state(warehouse, args, getattr(dbt, "in_process", False))
    failure: DagsterDbtCliRuntimeError | None = None
    try:
        if parse_state is not None and parse_state.exists():
            shutil.copyfile(parse_state, target / PARTIAL_PARSE_FILE)
        events: list[Any] = []
        # dbt's profile reads the warehouse file from the variable the resource also reads.
        with environ({"HEADWATER_DUCKDB_PATH": str(warehouse.resolved_path())}):
            invocation = dbt.cli(args, context=context, target_path=target)
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
    with warehouse.connect(read_only=True) as con:
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                table = ".".join(key.path)
                date_column = None
                if window:
                    props = context.assets_def.metadata_by_key.get(key, {})
                    date_column = props.get("headwater/partition_column")
                try:
                    stats = table_stats(con, table, date_column, window)
                except Exception as e:  # an ephemeral model or a missing relation has no stats
                    context.log.debug(f"no stats for {table}: {e}")
                    stats = {}
                event = event.with_metadata({**event.metadata, **stats})
            yield event
    if failure is not None:
        raise failure


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def _partial_parse_state(warehouse: Warehouse, args: list[str], in_process: bool) -> Path | None:
    """Where runs against this warehouse keep dbt's partial-parse state (None: not reusable).

    dbt re-parses the whole project (~2 s) unless the saved state was made with the same profile
    *values*, and the warehouse path is one of them: the state `ensure_manifest` leaves in
    target/ was parsed with the default path, so dagster-dbt's copy of it never applies to a run
    against the resource's file. Each warehouse file gets its own state, refreshed by every run
    that parsed. In a subprocess, a run with `--vars` (the daily window) changes dbt's vars hash,
    so it parses in full and its state is of no use to the next window; in process, the parse
    never has vars (data_platform/dbt_in_process.py).
    """
    if "--vars" in args and not in_process:
        return None
    path = str(warehouse.resolved_path())
    return TARGET_DIR / f"{PARTIAL_PARSE_FILE}.{hashlib.sha256(path.encode()).hexdigest()[:12]}"


def dbt_vars(window: tuple[str, str]) -> list[str]:
    return ["--vars", json.dumps({"min_date": window[0], "max_date": window[1]})]
