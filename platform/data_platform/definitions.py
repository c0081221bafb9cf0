"""The data-engineering code location: raw sources and the dbt warehouse (staging -> marts).

The definitions are those of the configured project (`HEADWATER_PROJECT_DIR`, default this
repository), built when Dagster loads the location (`project_definitions`), not at import.
`from data_platform.definitions import defs` gives the same object.
"""

import dagster as dg

from data_platform.demo_feed import build_demo_feed, has_demo_sources
from data_platform.raw.assets import build_raw_assets
from data_platform.raw.audit import build_raw_audit
from data_platform.raw.contract import load_contracts
from data_platform.raw.database_assets import build_database_assets
from data_platform.raw.landing_sensor import build_landing_sensor
from data_platform.warehouse.assets import build_warehouse_assets, daily_keys
from headwater_core.config import dbt_project_dir, once_per_project
from headwater_core.dbt.resource import dbt_cli_resource
from headwater_core.names import DAILY_WAREHOUSE_JOB
from headwater_core.partitions import partitions_def
from headwater_core.resources import LandingZone, Warehouse


def build_definitions() -> dg.Definitions:
    """The location's definitions for the configured project."""
    raw_assets = build_raw_assets()
    warehouse = build_warehouse_assets()
    daily = daily_keys(warehouse)
    all_assets = [*raw_assets, *build_database_assets(), warehouse]
    all_contracts = load_contracts(dbt_project_dir()).values()
    contracts = [c for c in all_contracts if c.database is None]
    sensor = build_landing_sensor(
        contracts=contracts,
        all_assets=all_assets,
        daily_keys=daily,
        unpartitioned_warehouse_keys=set(warehouse.keys) - daily,
    )
    daily_job = dg.define_asset_job(
        DAILY_WAREHOUSE_JOB,
        selection=dg.AssetSelection.assets(
            *[a for a in raw_assets if a.partitions_def is not None], *daily
        ),
        partitions_def=partitions_def(),
        description="One partition's raw files through the partitioned warehouse facts.",
    )
    jobs, schedules = [daily_job], []
    # dbt's source tests, weekly, for a project that has sources
    if all_contracts:
        audit_job, audit_schedule = build_raw_audit()
        jobs.append(audit_job)
        schedules.append(audit_schedule)
    # The demo's generator lands files only for a project that declares the demo's sources.
    if has_demo_sources(contracts):
        demo_feed_job, demo_feed_schedule = build_demo_feed()
        jobs.append(demo_feed_job)
        schedules.append(demo_feed_schedule)
    return dg.Definitions(
        assets=dg.with_source_code_references(all_assets),
        jobs=jobs,
        schedules=schedules,
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


_definitions = once_per_project(build_definitions)


@dg.definitions
def project_definitions() -> dg.Definitions:
    """What Dagster loads: the configured project's definitions, built once per project folder."""
    return _definitions()


def __getattr__(name: str) -> dg.Definitions:
    # `defs`, built on first use (PEP 562) rather than at import, which reads no environment.
    if name == "defs":
        return project_definitions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
