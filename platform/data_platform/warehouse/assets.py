"""The warehouse: the dbt project's staging, intermediate and marts layers as Dagster assets.

Two dbt ops over one project, because an op has one partitioning: models tagged `daily`
(incremental facts) run per time partition (the project's grain) with the window passed as
dbt vars; every other model
(views, dimensions) runs unpartitioned. The `features` layer belongs to the ML code location.

The daily op refuses a window holding a raw partition whose load was refused (its blocking
rejected-share check failed) or failed, in any raw table its selected models read, before dbt
runs: the raw asset records each partition's outcome (`raw.partition_status`), so this holds
whatever the run selected, even with no staging view between the raw asset and the mart.
"""

import json
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from data_platform.raw.contract import load_contracts
from data_platform.raw.ingest import ensure_raw_tables
from data_platform.raw.partition_status import blocked_partitions
from headwater_core.config import dbt_project_dir
from headwater_core.dbt.project import dbt_project, dbt_vars, ensure_manifest, window_vars
from headwater_core.dbt.resource import run_dbt
from headwater_core.dbt.translator import TRANSLATOR
from headwater_core.names import DUCKDB_POOL
from headwater_core.partitions import partition_settings, partitions_def, run_partition_window
from headwater_core.resources import Warehouse

# Layers owned by the ML location; the warehouse ops leave them out.
ML_LAYERS = "path:models/features"


def raw_tables_read(manifest_path: Path) -> dict[str, set[str]]:
    """Per dbt model name, the raw tables (schema.table) it reads, through any other model."""
    manifest = json.loads(manifest_path.read_text())
    parents: dict[str, list[str]] = manifest["parent_map"]
    sources = manifest["sources"]
    found: dict[str, set[str]] = {}

    def tables(unique_id: str) -> set[str]:
        if unique_id in sources:
            return {f"{sources[unique_id]['schema']}.{sources[unique_id]['name']}"}
        if unique_id not in found:
            found[unique_id] = set()  # a cycle cannot recurse for ever
            found[unique_id] = set().union(*(tables(p) for p in parents.get(unique_id, [])))
        return found[unique_id]

    return {
        node["name"]: tables(uid)
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
    }


def refuse_blocked_partitions(
    context: dg.AssetExecutionContext, warehouse: Warehouse, reads: dict[str, set[str]]
) -> None:
    """Fail the step, before dbt, if a raw partition of the window that a selected model reads
    was refused or failed: nothing downstream of it is built."""
    tables = set().union(*(reads.get(k.path[-1], set()) for k in context.selected_asset_keys))
    keys = context.partition_key_range
    with warehouse.connect() as con:
        blocked = blocked_partitions(con, tables, keys.start, keys.end)
    if not blocked:
        return
    lines = [f"{table} {key}: {status} ({reason})" for table, key, status, reason in blocked]
    raise dg.Failure(
        description=(
            f"not built: {len(blocked)} raw partition(s) of {keys.start}..{keys.end} were "
            "refused or failed to load; load them again, then re-run: " + "; ".join(lines)
        ),
        metadata={
            "refused_partitions": dg.MetadataValue.json(
                [{"table": t, "partition": k, "status": s} for t, k, s, _ in blocked]
            )
        },
    )


def build_warehouse_assets() -> list[dg.AssetsDefinition]:
    manifest = ensure_manifest()
    reads = raw_tables_read(manifest)
    grain = partition_settings().grain

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        select="tag:daily",
        exclude=ML_LAYERS,
        name="warehouse_daily",
        partitions_def=partitions_def(),
        # One dbt invocation for a whole backfill range: the window covers every day in it.
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=TRANSLATOR,
        pool=DUCKDB_POOL,
    )
    def warehouse_daily(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse
    ):
        """Incremental facts, rebuilt for exactly the partition window."""
        refuse_blocked_partitions(context, warehouse, reads)
        window = window_vars(*context.partition_time_window, grain)
        yield from run_dbt(context, dbt, warehouse, ["build", *dbt_vars(window)], window)

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        exclude=f"tag:daily {ML_LAYERS} source:*",
        name="warehouse",
        dagster_dbt_translator=TRANSLATOR,
        pool=DUCKDB_POOL,
    )
    def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        """Staging views, intermediate models and dimensions. Not the sources' tests
        (`source:*`): ingestion enforces them on every row it loads, and the weekly raw audit
        (data_platform/raw/audit.py) runs them on all of `raw`."""
        # Staging views select from every raw table, including days that have not landed yet.
        with warehouse.connect() as con:
            ensure_raw_tables(con, load_contracts(dbt_project_dir()).values())
        # In a run of partitions (a new day), the views' tests read those partitions' rows
        # (dbt_project/macros/tested_rows.sql); no model here reads the window.
        window = run_partition_window(context.run.tags)
        args = dbt_vars(window_vars(*window, grain)) if window else []
        yield from run_dbt(context, dbt, warehouse, ["build", *args])

    return [warehouse_daily, warehouse]
