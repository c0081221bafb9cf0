"""The raw contract audited in the warehouse: dbt's source tests over every loaded row, weekly.

Ingestion enforces every source test row by row before a row reaches `raw` (contract.py), so
the daily warehouse runs leave them out (`warehouse` excludes `source:*`): run there, they were
33 of a new day's 60 dbt nodes in that step, each over the whole history, and re-checked what
ingestion had just checked. This job runs them on what is loaded, which is what catches rows
written to `raw` some other way (a manual insert, a restored backup). Analysts run the same
with `dbt test --select source:*`.
"""

import dagster as dg
from dagster_dbt import DbtCliResource

from data_platform.raw.contract import load_contracts
from data_platform.raw.ingest import ensure_raw_tables
from headwater_core.config import dbt_project_dir
from headwater_core.dbt.project import ensure_manifest
from headwater_core.dbt.resource import run_dbt
from headwater_core.names import DUCKDB_POOL, RAW_AUDIT_JOB
from headwater_core.resources import Warehouse

# Sundays at 04:00 UTC, after the night's loads.
RAW_AUDIT_CRON = "0 4 * * 0"


def build_raw_audit() -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The audit job and its weekly schedule (running)."""
    manifest = ensure_manifest()

    @dg.op(
        name="audit_raw_contract",
        description="dbt's source tests (the raw contract) over every row loaded in `raw`.",
        out=dg.Out(dg.Nothing),
        tags={"kind": "dbt"},
        # dbt-duckdb opens the warehouse file to write, like every step that builds it
        pool=DUCKDB_POOL,
    )
    def audit_raw_contract(
        context: dg.OpExecutionContext, dbt: DbtCliResource, warehouse: Warehouse
    ):
        # A source that never landed a file has no table yet: empty, it passes its tests.
        with warehouse.connect() as con:
            ensure_raw_tables(con, load_contracts(dbt_project_dir()).values())
        # Each test's result is a check result on the raw asset it tests; a failed test fails
        # the op, naming it (run_dbt raises dbt's failure after reporting what ran).
        yield from run_dbt(
            context,
            dbt,
            warehouse,
            ["test", "--select", "source:*"],
            # dagster-dbt's own translator reads the sources' `meta.dagster.asset_key`
            manifest=manifest,
        )

    @dg.job(name=RAW_AUDIT_JOB, description="dbt's source tests over every row loaded in `raw`.")
    def raw_contract_audit():
        audit_raw_contract()

    schedule = dg.ScheduleDefinition(
        name=f"{RAW_AUDIT_JOB}_schedule",
        job=raw_contract_audit,
        cron_schedule=RAW_AUDIT_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every Sunday at 04:00 UTC, the raw contract checked on everything loaded.",
    )
    return raw_contract_audit, schedule
