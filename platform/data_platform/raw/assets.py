"""The `raw` layer: one asset per raw table, built from its contract in the dbt sources yml.

A table delivered as one file per day loads each day partition from its file; files of an hour,
a month or any span are each read once per run and their rows placed into the run's partitions
(`placement`); snapshot tables (customers, merchants) load their newest file and replace the
table. The materialisation's metadata reconciles every file: rows read = loaded + quarantined +
held back + of other partitions (`placement.FileReconciliation`). Each asset carries a
blocking check on the share of rejected rows, so a bad delivery stops its run before it reaches
the warehouse: its bad rows wait in `raw.quarantine`, and its good rows replace the day only if
the share is within the contract's threshold; otherwise the day keeps the rows it had.

A partition that cannot be loaded at all (two files for a day, a link out of the landing folder,
a file still being written or unreadable) is recorded in the quarantine and fails the run, which
names it, after the other partitions loaded (each recorded as materialised on its own). Every
partition's outcome is recorded for the warehouse (`partition_status`), which refuses to build
from a refused or failed one.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import dagster as dg

from data_platform.raw.contract import SourceContract, load_contracts
from data_platform.raw.ingest import LoadResult
from data_platform.raw.landing import LandingFileError, PartitionWindow
from data_platform.raw.partition_status import record_statuses
from data_platform.raw.placement import FileReconciliation
from data_platform.raw.run_load import TableLoad, load_table
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
from headwater_core.partitions import partitions_def as project_partitions
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


# Files listed one by one in the metadata; past this, only those with something to say. Dagster
# copies a range's metadata onto the event of every partition: 790 day files listed in each of 790
# events would be 600k lines in the event log.
FILES_LISTED = 31


def _files_metadata(files: list[FileReconciliation]) -> dict:
    """Each file's rows: read = loaded + quarantined + held back + of other partitions."""
    listed = files
    if len(files) > FILES_LISTED:
        listed = [
            f
            for f in files
            if f.fault or f.rows_quarantined or f.rows_held_back or f.rows_other_partitions
        ][:FILES_LISTED]
    counts = {
        f.source_file: {
            "read": f.rows_read,
            "loaded": f.rows_loaded,
            "quarantined": f.rows_quarantined,
            "held_back": f.rows_held_back,
            "other_partitions": f.rows_other_partitions,
            **({"fault": f.fault} if f.fault else {}),
        }
        for f in listed
    }
    table = "\n".join(
        f"| `{name}` | {c['read']} | {c['loaded']} | {c['quarantined']} | {c['held_back']} | "
        f"{c['other_partitions']} | {c.get('fault', '')} |"
        for name, c in counts.items()
    )
    more = len(files) - len(listed)
    return {
        "rows_read": sum(f.rows_read for f in files),
        "rows_loaded": sum(f.rows_loaded for f in files),
        "rows_quarantined": sum(f.rows_quarantined for f in files),
        "rows_held_back": sum(f.rows_held_back for f in files),
        "rows_other_partitions": sum(f.rows_other_partitions for f in files),
        "rows_reconciled": all(f.balanced for f in files),
        "files": dg.MetadataValue.json(counts),
        "source_files": dg.MetadataValue.md(
            "read = loaded + quarantined + held back (its partition kept the rows it had) + "
            "of partitions outside this run\n\n"
            "| file | read | loaded | quarantined | held back | other partitions | fault |\n"
            "|---|---:|---:|---:|---:|---:|---|\n"
            + table
            + (
                f"\n\n{more} more file(s) not listed; `rows_reconciled` covers them all"
                if more
                else ""
            )
        ),
        "files_read": len(files),
    }


def _load_metadata(
    load: TableLoad, con, contract: SourceContract, windows: list[PartitionWindow]
) -> dict:
    results = load.results
    metadata = _files_metadata(load.files)
    rejected = metadata["rows_rejected"] = metadata["rows_quarantined"]
    metadata["rejected_share"] = rejected / metadata["rows_read"] if metadata["rows_read"] else 0.0
    where = "true"
    if windows:
        first, last = windows[0].start.date(), windows[-1].start.date()
        where = f"_partition_date between date '{first}' and date '{last}'"
    preview = con.execute(
        f"select {', '.join(contract.column_names)} from {contract.qualified_name} "
        f"where {where} limit 5"
    )
    (total,) = con.execute(f"select count(*) from {contract.qualified_name}").fetchone()
    reasons: dict[str, int] = {}
    for r in results:
        for reason, n in r.violations_by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + n
    metadata["preview"] = dg.MetadataValue.md(
        markdown_preview([d[0] for d in preview.description], preview.fetchall())
    )
    metadata["dagster/row_count"] = total
    metadata["dagster/table_name"] = contract.qualified_name
    # Over the threshold, a partition kept the rows it had (`load_file`, `load_spread`).
    kept = [r.partition_key for r in results if r.rows_read and not r.rows_loaded]
    if kept:
        metadata["kept_previous_rows"] = dg.MetadataValue.md(
            "Not loaded, the partition kept the rows it had:\n" + "\n".join(f"- {k}" for k in kept)
        )
    elif not contract.snapshot:
        metadata["dagster/partition_row_count"] = metadata["rows_loaded"]
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
    """The check on the worst partition of the run: each delivery must pass on its own."""
    worst = max(results, key=lambda r: r.rejected_share, default=None)
    if worst is None:
        return dg.AssetCheckResult(check_name=REJECTED_SHARE_CHECK, passed=True)
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


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def partition_windows(
    partitions_def: dg.TimeWindowPartitionsDefinition, keys: Sequence[str]
) -> list[PartitionWindow]:
    """The run's partitions as plain time windows (UTC), whatever the grain."""
    windows = []
    for key in keys:
        window = partitions_def.time_window_for_partition_key(key)
        windows.append(PartitionWindow(key, _utc(window.start), _utc(window.end)))
    return windows


def partition_bounds(
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> tuple[datetime, datetime | None]:
    """The time all partitions cover: [start of the first, end of the last)."""
    last = partitions_def.get_last_partition_window()
    return _utc(partitions_def.start), _utc(last.end) if last else None


def _failure(contract: SourceContract, load: TableLoad) -> dg.Failure:
    """The run's failure, naming the failed partitions (in the message and the metadata)."""
    failed = load.failed_partitions
    messages = list(dict.fromkeys(f.message for f in load.faults))
    loaded = [r.partition_key for r in load.results]
    return dg.Failure(
        description=(
            f"{contract.qualified_name}: {len(failed)} partition(s) failed "
            f"({_key_list(failed)}); {len(loaded)} other(s) loaded. " + "; ".join(messages)
        ),
        metadata={
            "failed_partitions": dg.MetadataValue.json(failed),
            "loaded_partitions": len(loaded),
            "reasons": dg.MetadataValue.md("\n".join(f"- {m}" for m in messages)),
        },
    )


def _key_list(keys: list[str]) -> str:
    return ", ".join(keys) if len(keys) <= 10 else f"{', '.join(keys[:10])}, ... {keys[-1]}"


def _report(context: dg.AssetExecutionContext, load: TableLoad) -> None:
    # One log line per file with rejections; the clean ones are in one summary line (a log
    # line is an event-log write, ~10 ms, a lot over a year of days).
    for f in load.files:
        if f.rows_quarantined or f.rows_held_back:
            context.log.warning(
                f"{f.source_file}: {f.rows_loaded} rows loaded, {f.rows_quarantined} "
                f"quarantined, {f.rows_held_back} held back (their partition kept its rows)"
            )


def _partition_materializations(
    key: dg.AssetKey, load: TableLoad
) -> Iterator[dg.AssetMaterialization]:
    """Each partition that loaded, recorded on its own: the step fails for the others."""
    for r in load.results:
        if r.rows_loaded or not r.rows_read:
            yield dg.AssetMaterialization(
                asset_key=key,
                partition=r.partition_key,
                # the partition's own account: its rows read = loaded + rejected
                metadata={
                    "rows_read": r.rows_read,
                    "rows_loaded": r.rows_loaded,
                    "rows_rejected": r.rows_rejected,
                },
            )


def build_raw_asset(
    contract: SourceContract,
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None,
) -> dg.AssetsDefinition:
    """The Dagster asset that loads one raw table from its landing files, partitioned by
    `partitions_def` (default: the project's) unless it is a snapshot."""
    partitions_def = partitions_def or project_partitions()
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
        partitions_def=partitions_def if partitioned else None,
        # A backfill of many partitions loads them in one run, each file read once.
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        pool=DUCKDB_POOL,
        freshness_policy=freshness_policy(contract.freshness),
        kinds={"python", "duckdb"},
        owners=[OWNER_DATA_PLATFORM],
        metadata={
            "dagster/column_schema": _column_schema(contract),
            "dagster/table_name": contract.qualified_name,
            "landing_pattern": contract.landing_pattern,
            "delivery": contract.delivery,
            "max_rejected_share": threshold,
        },
        check_specs=[_rejected_share_check(key, threshold)],
    )
    def _raw_asset(
        context: dg.AssetExecutionContext, warehouse: Warehouse, landing: LandingZone
    ) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
        keys = context.partition_keys if partitioned else ()
        windows = partition_windows(partitions_def, keys)
        bounds = partition_bounds(partitions_def) if partitioned else (datetime.min, None)
        with warehouse.connect() as con:
            load = load_table(
                con,
                contract,
                landing.resolved_path(),
                windows,
                bounds,
                context.run.run_id,
                context.log.error,
            )
            if partitioned:
                record_statuses(con, contract.qualified_name, load.statuses(), context.run.run_id)
            metadata = _load_metadata(load, con, contract, windows)
        _report(context, load)
        if load.faults:
            # the other partitions loaded; the run fails naming the failed ones
            yield from _partition_materializations(key, load)
            raise _failure(contract, load) from LandingFileError(
                "; ".join(dict.fromkeys(f.message for f in load.faults))
            )
        context.log.info(
            f"{len(load.files)} file(s): {metadata['rows_read']} rows read, "
            f"{metadata['rows_loaded']} loaded, {metadata['rows_quarantined']} quarantined"
        )
        yield dg.MaterializeResult(
            metadata=metadata, check_results=[_rejected_share_result(load.results, threshold)]
        )

    return _raw_asset


def build_raw_assets() -> list[dg.AssetsDefinition]:
    """One raw asset per contract with landing files (database tables: `database_assets`)."""
    contracts = load_contracts(dbt_project_dir()).values()
    return [build_raw_asset(c) for c in contracts if c.database is None]
