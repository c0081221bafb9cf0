"""Raw assets for tables served from a database (`meta.headwater.database` in the contract).

Each run reads the rows added since the last one with dlt, through dagster-dlt's
`DagsterDltResource` (dlt's own run metadata comes with it), and loads them under the contract
(`raw/database.py`): good rows appended to `raw.<table>` on their day, refused ones in
`raw.quarantine`, the cursor moved in the same transaction. A run with no new rows changes
nothing. The asset is not partitioned: one run reads whatever is new, whichever days it falls
on, and each row carries its day in `_partition_date`. Like a file's, its blocking check fails
when more than the contract's share of a batch is refused; the batch is then not loaded, and
is read again by the next run.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from data_platform.raw.contract import SourceContract, load_contracts
from data_platform.raw.database import (
    connection_url,
    dlt_pipeline,
    dlt_source,
    extracted_files,
    last_cursor,
    load_batch,
    location,
)
from data_platform.raw.ingest import LoadResult
from headwater_core.config import dbt_project_dir, state_dir
from headwater_core.freshness import freshness_policy
from headwater_core.metadata import markdown_preview
from headwater_core.names import (
    DUCKDB_POOL,
    OWNER_DATA_PLATFORM,
    QUARANTINE_TABLE,
    RAW,
    REJECTED_SHARE_CHECK,
)
from headwater_core.partitions import partitions_def
from headwater_core.resources import Warehouse

# dlt's run metadata worth keeping next to the contract's figures.
_DLT_METADATA = ("rows_loaded", "started_at", "finished_at", "first_run")


def _run_dlt(
    context: dg.AssetExecutionContext, key: dg.AssetKey, source: Any, pipeline: Any
) -> dict[str, Any]:
    """The dlt pipeline run by dagster-dlt's resource; its metadata for the one table."""
    from dagster_dlt import DagsterDltResource, DagsterDltTranslator

    class _OneKey(DagsterDltTranslator):
        def get_asset_spec(self, data):  # the dlt table is this asset
            return super().get_asset_spec(data).replace_attributes(key=key)

    events = DagsterDltResource().run(
        context,
        dlt_source=source,
        dlt_pipeline=pipeline,
        dagster_dlt_translator=_OneKey(),
        loader_file_format="parquet",
    )
    found: dict[str, Any] = {}
    for event in events:  # one MaterializeResult: folded into this asset's own
        found.update(event.metadata or {})
    return {f"dlt/{k}": v for k, v in found.items() if k in _DLT_METADATA}


def _metadata(con: duckdb.DuckDBPyConnection, contract: SourceContract, result: LoadResult):
    preview = con.execute(
        f"select {', '.join(contract.column_names)} from {contract.qualified_name} "
        "order by _loaded_at desc limit 5"
    )
    (total,) = con.execute(f"select count(*) from {contract.qualified_name}").fetchone()
    metadata: dict[str, Any] = {
        "rows_read": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "rows_rejected": result.rows_rejected,
        "rejected_share": result.rejected_share,
        "source": result.source_file,
        "days": result.partition_key,
        "preview": dg.MetadataValue.md(
            markdown_preview([d[0] for d in preview.description], preview.fetchall())
        ),
        "dagster/row_count": total,
        "dagster/table_name": contract.qualified_name,
    }
    if result.violations_by_reason:
        metadata["rejections"] = dg.MetadataValue.md(
            "| column: reason | rows |\n|---|---|\n"
            + "\n".join(f"| {k} | {v} |" for k, v in result.violations_by_reason.items())
            + f"\n\nQuery them: `select * from {QUARANTINE_TABLE} "
            f"where source_table = '{contract.qualified_name}'`"
        )
    return metadata


def _check_spec(key: dg.AssetKey, threshold: float) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        REJECTED_SHARE_CHECK,
        asset=key,
        blocking=True,
        description=f"Fails when more than {threshold:.1%} of a batch's rows are refused: they "
        "are in quarantine, and the batch is not loaded (the next run reads it again).",
    )


def _check_result(result: LoadResult, threshold: float) -> dg.AssetCheckResult:
    passed = result.rejected_share <= threshold
    return dg.AssetCheckResult(
        check_name=REJECTED_SHARE_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rejected_share": result.rejected_share, "threshold": threshold},
        description=(
            f"{result.rows_rejected} of {result.rows_read} rows read from {result.source_file} "
            f"rejected ({result.rejected_share:.2%}, threshold {threshold:.1%})"
            + ("" if passed else "; the batch was not loaded and will be read again")
        ),
    )


def build_database_asset(
    contract: SourceContract, partitions: dg.TimeWindowPartitionsDefinition | None = None
) -> dg.AssetsDefinition:
    """The asset that loads one raw table from its database table, incrementally."""
    assert contract.database is not None
    partitions = partitions or partitions_def()
    key = dg.AssetKey(list(contract.asset_key))
    threshold = contract.max_rejected_share
    first_day = partitions.start.date()
    end_day = partitions.end.date() if partitions.end else None

    @dg.asset(
        key=key,
        group_name=RAW,
        description=(
            f"{contract.description}\n\nRead from `{contract.database.table}` (the database "
            f"in ${contract.database.connection_env}) by dlt, rows above the last "
            f"`{contract.database.cursor_column}` loaded, into `{contract.qualified_name}` "
            f"under the contract in the dbt source `{contract.source_name}`; rows that break "
            f"it go to `{QUARANTINE_TABLE}`."
        ),
        pool=DUCKDB_POOL,
        freshness_policy=freshness_policy(contract.freshness),
        kinds={"dlt", "duckdb"},
        owners=[OWNER_DATA_PLATFORM],
        metadata={
            "dagster/table_name": contract.qualified_name,
            "source_table": contract.database.table,
            "cursor_column": contract.database.cursor_column,
            "max_rejected_share": threshold,
        },
        check_specs=[_check_spec(key, threshold)],
    )
    def _database_asset(
        context: dg.AssetExecutionContext, warehouse: Warehouse
    ) -> Iterator[dg.MaterializeResult]:
        url = connection_url(contract)
        where = location(url, contract)
        workdir = state_dir() / "database" / contract.table
        # a crashed run's extract is stale: its rows are read again from the warehouse's cursor
        shutil.rmtree(workdir, ignore_errors=True)
        with warehouse.connect() as con:
            after = last_cursor(con, contract)
        context.log.info(f"{where}: reading rows with {contract.database.cursor_column} > {after}")
        dlt_metadata = _run_dlt(
            context, key, dlt_source(url, contract, after), dlt_pipeline(workdir, contract)
        )
        with warehouse.connect() as con:
            result = load_batch(
                con,
                contract,
                extracted_files(workdir),
                where,
                context.run_id,
                first_day,
                end_day,
                threshold,
            )
            metadata = _metadata(con, contract, result)
        shutil.rmtree(workdir, ignore_errors=True)
        context.log.info(
            f"{where}: {result.rows_read} rows read, {result.rows_loaded} loaded, "
            f"{result.rows_rejected} rejected"
        )
        yield dg.MaterializeResult(
            metadata={**metadata, **dlt_metadata},
            check_results=[_check_result(result, threshold)],
        )

    return _database_asset


def build_database_assets(project: Path | None = None) -> list[dg.AssetsDefinition]:
    """One asset per contract served from a database."""
    return [
        build_database_asset(c)
        for c in load_contracts(project or dbt_project_dir()).values()
        if c.database is not None
    ]
