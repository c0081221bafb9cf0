"""The `raw` layer: one asset per raw table, built from its contract in the dbt sources yml.

Daily tables (transactions, chargebacks) load one landing file per day partition; snapshot
tables (customers, merchants) load their newest file and replace the table. Each asset carries a
blocking check on the share of rejected rows, so a bad delivery stops its run before it reaches
the warehouse, while its good rows are loaded and its bad rows wait in `raw.quarantine`.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb

from data_platform.raw.contract import SourceContract, load_contracts
from data_platform.raw.ingest import LoadResult, load_file
from data_platform.raw.landing import files_to_load
from headwater_core.config import DBT_PROJECT_DIR
from headwater_core.freshness import freshness_policy
from headwater_core.metadata import markdown_preview
from headwater_core.names import (
    DUCKDB_POOL,
    OWNER_DATA_PLATFORM,
    QUARANTINE_TABLE,
    RAW,
    REJECTED_SHARE_CHECK,
)
from headwater_core.partitions import DAILY_PARTITIONS
from headwater_core.resources import LandingZone, Warehouse

_DUCKDB_TO_DAGSTER_TYPE = {"varchar": "string", "timestamp": "timestamp", "integer": "int"}


def _column_schema(contract: SourceContract) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=_DUCKDB_TO_DAGSTER_TYPE.get(c.data_type, c.data_type),
                description=c.description or None,
                constraints=dg.TableColumnConstraints(
                    nullable=not c.required,
                    unique=c.unique,
                    other=[f"one of {list(c.accepted_values)}"] if c.accepted_values else [],
                ),
            )
            for c in contract.columns
        ]
    )


def _load_metadata(results: list[LoadResult], con, contract: SourceContract) -> dict:
    rows_read = sum(r.rows_read for r in results)
    rejected = sum(r.rows_rejected for r in results)
    loaded = sum(r.rows_loaded for r in results)
    keys = [r.partition_key for r in results]
    if contract.snapshot:
        where = "true"
    else:
        where = "_partition_date in (" + ", ".join(f"date '{k}'" for k in keys) + ")"
    preview = con.execute(
        f"select {', '.join(contract.column_names)} from {contract.qualified_name} "
        f"where {where} limit 5"
    )
    (total,) = con.execute(f"select count(*) from {contract.qualified_name}").fetchone()
    reasons: dict[str, int] = {}
    for r in results:
        for reason, n in r.violations_by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + n
    metadata = {
        "rows_read": rows_read,
        "rows_loaded": loaded,
        "rows_rejected": rejected,
        "rejected_share": rejected / rows_read if rows_read else 0.0,
        "source_files": dg.MetadataValue.md("\n".join(f"- `{r.source_file}`" for r in results)),
        "preview": dg.MetadataValue.md(
            markdown_preview([d[0] for d in preview.description], preview.fetchall())
        ),
        "dagster/row_count": total,
        "dagster/table_name": contract.qualified_name,
    }
    if not contract.snapshot:
        metadata["dagster/partition_row_count"] = loaded
    if reasons:
        metadata["rejections"] = dg.MetadataValue.md(
            "| column: reason | rows |\n|---|---|\n"
            + "\n".join(f"| {k} | {v} |" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
            + f"\n\nQuery them: `select * from {QUARANTINE_TABLE} "
            f"where source_table = '{contract.qualified_name}'`"
        )
    return metadata


def _rejected_share_check(key: dg.AssetKey, threshold: float) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        REJECTED_SHARE_CHECK,
        asset=key,
        blocking=True,
        description=(
            f"Fails when more than {threshold:.1%} of the rows of a delivery break the "
            "contract (the rows that passed are loaded; the rest are in quarantine)."
        ),
    )


def _rejected_share_result(results: list[LoadResult], threshold: float) -> dg.AssetCheckResult:
    """The check on the worst file of the run: each delivery must pass on its own."""
    worst = max(results, key=lambda r: r.rejected_share)
    return dg.AssetCheckResult(
        check_name=REJECTED_SHARE_CHECK,
        passed=worst.rejected_share <= threshold,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rejected_share": worst.rejected_share,
            "threshold": threshold,
            "worst_file": worst.source_file,
            "rows_rejected": worst.rows_rejected,
        },
        description=(
            f"{worst.rows_rejected} of {worst.rows_read} rows of "
            f"{worst.source_file} rejected ({worst.rejected_share:.2%}, "
            f"threshold {threshold:.1%})"
        ),
    )


def _load_all(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    files: list[tuple[str, Path]],
) -> list[LoadResult]:
    results = []
    for partition_key, path in files:
        result = load_file(con, contract, path, partition_key, context.run_id)
        # One log line per file with rejections; the clean ones are in one summary
        # line (a log line is an event-log write, ~10 ms, a lot over a year of days).
        if result.rows_rejected:
            context.log.warning(
                f"{path.name}: {result.rows_loaded} rows loaded, {result.rows_rejected} rejected"
            )
        results.append(result)
    return results


def build_raw_asset(contract: SourceContract) -> dg.AssetsDefinition:
    """The Dagster asset that loads one raw table from its landing files."""
    key = dg.AssetKey(list(contract.asset_key))
    partitioned = not contract.snapshot
    threshold = contract.max_rejected_share

    @dg.asset(
        key=key,
        group_name=RAW,
        description=(
            f"{contract.description}\n\nLoaded into `{contract.qualified_name}` under the contract "
            f"in the dbt source `{contract.source_name}`; rows that break it go to "
            f"`{QUARANTINE_TABLE}`."
        ),
        partitions_def=DAILY_PARTITIONS if partitioned else None,
        # A backfill of many days loads them in one run, one transaction per day.
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        pool=DUCKDB_POOL,
        freshness_policy=freshness_policy(contract.freshness),
        kinds={"python", "duckdb"},
        owners=[OWNER_DATA_PLATFORM],
        metadata={
            "dagster/column_schema": _column_schema(contract),
            "dagster/table_name": contract.qualified_name,
            "landing_pattern": contract.landing_pattern,
            "max_rejected_share": threshold,
        },
        check_specs=[_rejected_share_check(key, threshold)],
    )
    def _raw_asset(
        context: dg.AssetExecutionContext, warehouse: Warehouse, landing: LandingZone
    ) -> Iterator[dg.MaterializeResult]:
        keys = context.partition_keys if partitioned else ()
        files = files_to_load(contract, landing.resolved_path(), keys)
        with warehouse.connect() as con:
            results = _load_all(context, con, contract, files)
            metadata = _load_metadata(results, con, contract)
        context.log.info(
            f"{len(results)} file(s): {metadata['rows_loaded']} rows loaded, "
            f"{metadata['rows_rejected']} rejected"
        )
        yield dg.MaterializeResult(
            metadata=metadata, check_results=[_rejected_share_result(results, threshold)]
        )

    return _raw_asset


def build_raw_assets() -> list[dg.AssetsDefinition]:
    """One raw asset per contract declared in the dbt project's sources."""
    return [build_raw_asset(c) for c in load_contracts(DBT_PROJECT_DIR).values()]
