"""The landing sensor: a new or changed landing file becomes a run for its partition.

It only lists files and reads the Dagster instance; it never opens DuckDB, whose single-writer
lock a sensor must not compete for. A daily file asks for its raw partition and the daily
warehouse models built from it; a new snapshot file asks for its raw table and the unpartitioned
warehouse models. Daily runs wait until the unpartitioned warehouse (staging views, dimensions)
has been built once, because the daily facts select from it.
"""

import json
from collections.abc import Sequence

import dagster as dg

from data_platform.contract import SourceContract
from data_platform.ingest import LandingFileError, find_landing_files
from data_platform.resources import LandingZone
from data_platform.settings import DAILY_PARTITIONS


def _file_cursor(path) -> str:
    stat = path.stat()
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def build_landing_sensor(
    contracts: Sequence[SourceContract],
    all_assets: Sequence[dg.AssetsDefinition],
    daily_keys: set[dg.AssetKey],
    unpartitioned_warehouse_keys: set[dg.AssetKey],
) -> dg.SensorDefinition:
    """A sensor over every contract's landing files, requesting runs downstream of each."""

    def downstream(key: dg.AssetKey) -> set[dg.AssetKey]:
        return set(dg.AssetSelection.assets(key).downstream().resolve(all_assets))

    daily = [c for c in contracts if not c.snapshot]
    snapshots = [c for c in contracts if c.snapshot]
    daily_targets = {
        c.table: sorted(
            {dg.AssetKey(list(c.asset_key))}
            | (downstream(dg.AssetKey(list(c.asset_key))) & daily_keys)
        )
        for c in daily
    }
    snapshot_targets = sorted(
        {dg.AssetKey(list(c.asset_key)) for c in snapshots} | unpartitioned_warehouse_keys
    )
    selection = set(snapshot_targets).union(*daily_targets.values())

    @dg.sensor(
        name="landing_sensor",
        description=(
            "Watches the landing folder and requests a run for each new or changed file: "
            "its raw partition and the warehouse models built from it."
        ),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*selection),
    )
    def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        seen: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
        landing_dir = landing.resolved_path()
        requests: list[dg.RunRequest] = []
        skipped: list[str] = []

        snapshot_changes = []
        for contract in snapshots:
            try:
                files = find_landing_files(contract, landing_dir)
            except LandingFileError as e:
                skipped.append(str(e))
                continue
            if files:
                key = max(files)
                stamp = f"{key}:{_file_cursor(files[key])}"
                if seen.get(contract.table, {}).get("newest") != stamp:
                    snapshot_changes.append((contract.table, stamp))
        if snapshot_changes:
            requests.append(
                dg.RunRequest(
                    run_key="snapshots:" + ",".join(s for _, s in snapshot_changes),
                    asset_selection=snapshot_targets,
                    tags={"headwater/trigger": "landing_sensor"},
                )
            )
            for table, stamp in snapshot_changes:
                seen.setdefault(table, {})["newest"] = stamp

        warehouse_built = all(
            context.instance.get_latest_materialization_event(k) is not None
            for k in unpartitioned_warehouse_keys
        )
        waiting = 0
        for contract in daily:
            try:
                files = find_landing_files(contract, landing_dir)
            except LandingFileError as e:
                skipped.append(str(e))
                continue
            table_seen = seen.setdefault(contract.table, {})
            for partition_key, path in sorted(files.items()):
                stamp = _file_cursor(path)
                if table_seen.get(partition_key) == stamp:
                    continue
                if not DAILY_PARTITIONS.has_partition_key(partition_key):
                    skipped.append(f"{path}: {partition_key} is outside the daily partitions")
                    continue
                if not warehouse_built:
                    # Not recorded in the cursor: it is requested on the tick after the
                    # warehouse's first build.
                    waiting += 1
                    continue
                requests.append(
                    dg.RunRequest(
                        run_key=f"{contract.table}:{partition_key}:{stamp}",
                        partition_key=partition_key,
                        asset_selection=daily_targets[contract.table],
                        tags={"headwater/trigger": "landing_sensor"},
                    )
                )
                table_seen[partition_key] = stamp

        if not requests:
            if waiting:
                return dg.SkipReason(
                    f"{waiting} daily files wait for the warehouse's first build (snapshot run)"
                )
            return dg.SkipReason("; ".join(skipped) if skipped else "no new landing files")
        for message in skipped:
            context.log.warning(message)
        context.update_cursor(json.dumps(seen, sort_keys=True))
        return requests

    return landing_sensor
