"""The `raw` layer: one asset per raw table, built from its contract in the dbt sources yml.

Daily tables (transactions, chargebacks) load one landing file per day partition; snapshot
tables (customers, merchants) load their newest file and replace the table. Each asset carries a
blocking check on the share of rejected rows, so a bad delivery stops its run before it reaches
the warehouse: its bad rows wait in `raw.quarantine`, and its good rows replace the day only if
the share is within the contract's threshold; otherwise the day keeps the rows it had.

A day that cannot be loaded at all (two files, a link out of the landing folder, a file still
being written) is recorded in the quarantine and fails the run, after the other days loaded.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb

from data_platform.raw.contract import SourceContract, load_contracts
from data_platform.raw.ingest import LoadResult, ensure_raw_table, load_file
from data_platform.raw.landing import (
    LandingFault,
    LandingFileError,
    plan_load,
    wait_until_settled,
)
from data_platform.raw.quarantine import quarantine_file_fault
from headwater_core.config import dbt_project_dir
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
        where = "_partition_date in (" + ", ".join(f"date '{k[:10]}'" for k in keys) + ")"
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
    # Over the threshold, a file's day kept the rows it had (`_load_day`).
    kept = [r.source_file for r in results if r.rejected_share > contract.max_rejected_share]
    if kept:
        metadata["kept_previous_rows"] = dg.MetadataValue.md(
            "Not loaded, the day kept the rows it had:\n" + "\n".join(f"- `{f}`" for f in kept)
        )
    elif not contract.snapshot:
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
            "contract: the broken rows are in quarantine, and the day (a snapshot: the table) "
            "keeps the rows it had."
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
            + ("" if worst.rejected_share <= threshold else "; its day kept the rows it had")
        ),
    )


def _load_day(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    partition_key: str,
    path: Path,
) -> LoadResult:
    """Load one file; over the rejected-share threshold, the day keeps its rows (the result
    says 0 loaded) and only its quarantine rows are replaced."""
    return load_file(
        con, contract, path, partition_key, context.run_id, contract.max_rejected_share
    )


def _load_all(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    files: list[tuple[str, Path]],
) -> list[LoadResult]:
    results = []
    for partition_key, path in files:
        result = _load_day(context, con, contract, partition_key, path)
        # One log line per file with rejections; the clean ones are in one summary
        # line (a log line is an event-log write, ~10 ms, a lot over a year of days).
        if result.rows_rejected:
            kept = "" if result.rows_loaded else f"; {partition_key} kept the rows it had"
            context.log.warning(
                f"{path.name}: {result.rows_loaded} rows loaded, "
                f"{result.rows_rejected} rejected{kept}"
            )
        results.append(result)
    return results


def _record_faults(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    faults: list[LandingFault],
) -> None:
    """Each faulty day in the quarantine (no source row; the reason names its files)."""
    ensure_raw_table(con, contract)
    for fault in faults:
        context.log.error(fault.message)
        quarantine_file_fault(
            con, contract, fault.path, fault.partition_key, fault.message, context.run_id
        )


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
        partitions_def=partitions_def() if partitioned else None,
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
        plan = plan_load(contract, landing.resolved_path(), keys)
        files, unsettled = wait_until_settled(plan.files, contract.settle_seconds)
        faults = plan.faults + unsettled
        with warehouse.connect() as con:
            _record_faults(context, con, contract, faults)
            results = _load_all(context, con, contract, files)
            if not faults:
                metadata = _load_metadata(results, con, contract)
        if faults:
            # the other days are loaded; the run fails naming the faulty days' files
            raise LandingFileError("; ".join(f.message for f in faults))
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
    return [build_raw_asset(c) for c in load_contracts(dbt_project_dir()).values()]
