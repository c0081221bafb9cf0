"""The data-engineering code location: raw sources and the dbt warehouse (staging -> marts)."""

import dagster as dg

from data_platform.demo_feed import build_demo_feed
from data_platform.raw.assets import build_raw_assets
from data_platform.raw.contract import load_contracts
from data_platform.raw.database_assets import build_database_assets
from data_platform.raw.landing_sensor import build_landing_sensor
from data_platform.warehouse.assets import build_warehouse_assets
from headwater_core.config import DBT_PROJECT_DIR
from headwater_core.dbt.resource import dbt_cli_resource
from headwater_core.names import DAILY_WAREHOUSE_JOB
from headwater_core.partitions import DAILY_PARTITIONS
from headwater_core.resources import LandingZone, Warehouse


def build_definitions() -> dg.Definitions:
    raw_assets = build_raw_assets()
    warehouse_daily, warehouse = build_warehouse_assets()
    all_assets = [*raw_assets, *build_database_assets(), warehouse_daily, warehouse]
    sensor = build_landing_sensor(
        contracts=[c for c in load_contracts(DBT_PROJECT_DIR).values() if c.database is None],
        all_assets=all_assets,
        daily_keys=set(warehouse_daily.keys),
        unpartitioned_warehouse_keys=set(warehouse.keys),
    )
    daily_job = dg.define_asset_job(
        DAILY_WAREHOUSE_JOB,
        selection=dg.AssetSelection.assets(
            *[a for a in raw_assets if a.partitions_def is not None], warehouse_daily
        ),
        partitions_def=DAILY_PARTITIONS,
        description="One day's raw files through the daily warehouse facts.",
    )
    demo_feed_job, demo_feed_schedule = build_demo_feed()
    return dg.Definitions(
        assets=dg.with_source_code_references(all_assets),
        jobs=[daily_job, demo_feed_job],
        schedules=[demo_feed_schedule],
        # Steps that write the warehouse take turns anyway (one DuckDB writer); running them in
        # the run's own process saves a code load per step.
        executor=dg.in_process_executor,
        sensors=[sensor],
        resources={
            "warehouse": Warehouse(),
            "landing": LandingZone(),
            "dbt": dbt_cli_resource(),
        },
    )


defs = build_definitions()
