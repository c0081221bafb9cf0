"""The warehouse: the dbt project's staging, intermediate and marts layers as Dagster assets.

One dbt op over the project, so that a run builds whatever it selected of the warehouse in one
dbt invocation (a new day's raw files, views, dimensions and facts: one dbt start-up, not two).
Its assets have two partitionings: models tagged `daily` (incremental facts) are partitioned by
the project's time partitions and built for the run's window, passed as dbt vars; every other
model (views, dimensions) is unpartitioned. The `features` layer belongs to the ML code
location.

A run that selects a daily model is refused, before dbt runs, if its window holds a raw
partition whose load was refused (its blocking rejected-share check failed) or failed, in any
raw table its selected models read: the raw asset records each partition's outcome
(`raw.partition_status`), so this holds whatever the run selected, even with no staging view
between the raw asset and the mart.
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
from headwater_core.dbt.translator import HeadwaterDbtTranslator
from headwater_core.names import DAILY_MODEL_TAG, DUCKDB_POOL
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
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    reads: dict[str, set[str]],
    keys: set[dg.AssetKey],
) -> None:
    """Fail the step, before dbt, if a raw partition of the window that one of the selected
    daily models `keys` reads was refused or failed: nothing downstream of it is built."""
    tables = set().union(*(reads.get(k.path[-1], set()) for k in keys))
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


class WarehouseTranslator(HeadwaterDbtTranslator):
    """The project's translator, with the models tagged `daily` partitioned by `partitions`."""

    def __init__(self, partitions: dg.PartitionsDefinition) -> None:
        super().__init__()
        self.partitions = partitions

    def get_partitions_def(self, dbt_resource_props) -> dg.PartitionsDefinition | None:
        tags = dbt_resource_props.get("tags", [])
        return self.partitions if DAILY_MODEL_TAG in tags else None


def daily_keys(warehouse: dg.AssetsDefinition) -> set[dg.AssetKey]:
    """The warehouse's partitioned assets (the `daily` models)."""
    return {spec.key for spec in warehouse.specs if spec.partitions_def is not None}


def build_warehouse_assets() -> dg.AssetsDefinition:
    manifest = ensure_manifest()
    reads = raw_tables_read(manifest)
    grain = partition_settings().grain

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        # Not the sources' tests (`source:*`): ingestion enforces them on every row it loads,
        # and the weekly raw audit (data_platform/raw/audit.py) runs them on all of `raw`.
        exclude=f"{ML_LAYERS} source:*",
        name="warehouse",
        # One dbt invocation for a whole backfill range: the window covers every day in it.
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=WarehouseTranslator(partitions_def()),
        pool=DUCKDB_POOL,
    )
    def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        """Staging views, intermediate models and dimensions, and the incremental facts rebuilt
        for exactly the run's partition window."""
        partitioned = daily_keys(context.assets_def) & context.selected_asset_keys
        if partitioned:
            refuse_blocked_partitions(context, warehouse, reads, partitioned)
        # Staging views select from every raw table, including days that have not landed yet.
        with warehouse.connect() as con:
            ensure_raw_tables(con, load_contracts(dbt_project_dir()).values())
        # The facts are built for the run's window; in a run of partitions (a new day) the
        # views' and dimensions' tests read those partitions' rows too
        # (dbt_project/macros/tested_rows.sql); no view or dimension reads the window.
        time_window = run_partition_window(context.run.tags)
        window = window_vars(*time_window, grain) if time_window else None
        args = dbt_vars(window) if window else []
        yield from run_dbt(
            context, dbt, warehouse, ["build", *args], window if partitioned else None
        )

    return warehouse
