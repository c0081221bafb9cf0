"""The warehouse: the dbt project's staging, intermediate and marts layers as Dagster assets.

Two dbt ops over one project, because an op has one partitioning: models tagged `daily`
(incremental facts) run per time partition (the project's grain) with the window passed as
dbt vars; every other model
(views, dimensions) runs unpartitioned. The `features` layer belongs to the ML code location.
"""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from data_platform.raw.contract import load_contracts
from data_platform.raw.ingest import ensure_raw_tables
from headwater_core.config import dbt_project_dir
from headwater_core.dbt.project import dbt_project, dbt_vars, ensure_manifest, window_vars
from headwater_core.dbt.resource import run_dbt
from headwater_core.dbt.translator import TRANSLATOR
from headwater_core.names import DUCKDB_POOL
from headwater_core.partitions import partition_settings, partitions_def
from headwater_core.resources import Warehouse

# Layers owned by the ML location; the warehouse ops leave them out.
ML_LAYERS = "path:models/features"


def build_warehouse_assets() -> list[dg.AssetsDefinition]:
    manifest = ensure_manifest()
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
        window = window_vars(*context.partition_time_window, grain)
        yield from run_dbt(context, dbt, warehouse, ["build", *dbt_vars(window)], window)

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        exclude=f"tag:daily {ML_LAYERS}",
        name="warehouse",
        dagster_dbt_translator=TRANSLATOR,
        pool=DUCKDB_POOL,
    )
    def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        """Staging views, intermediate models and dimensions."""
        # Staging views select from every raw table, including days that have not landed yet.
        with warehouse.connect() as con:
            ensure_raw_tables(con, load_contracts(dbt_project_dir()).values())
        yield from run_dbt(context, dbt, warehouse, ["build"])

    return [warehouse_daily, warehouse]
