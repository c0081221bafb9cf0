"""The landing sensor: a new or changed landing file becomes a run for its partition.

It only lists files and reads the Dagster instance; it never opens DuckDB, whose single-writer
lock a sensor must not compete for. A daily file asks for its raw partition and the daily
warehouse models built from it; a new snapshot file asks for its raw table and the unpartitioned
warehouse models. Daily runs wait until the unpartitioned warehouse (staging views, dimensions)
has been built once, because the daily facts select from it.
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg

from data_platform.raw.contract import SourceContract
from data_platform.raw.ingest import LandingFileError, find_landing_files
from headwater_core.partitions import DAILY_PARTITIONS
from headwater_core.resources import LandingZone


def _file_cursor(path) -> str:
    stat = path.stat()
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def _consecutive_ranges(keys: list[str]) -> list[tuple[str, str]]:
    """Sorted day keys grouped into runs of consecutive days: [(first, last), ...]."""
    ranges: list[tuple[str, str]] = []
    for key in sorted(keys):
        day = date.fromisoformat(key)
        if ranges and date.fromisoformat(ranges[-1][1]) + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
    return ranges


def _keys_between(keys: list[str], first: str, last: str) -> list[str]:
    return [k for k in keys if first <= k <= last]


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


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
        by_range: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for contract in daily:
            try:
                files = find_landing_files(contract, landing_dir)
            except LandingFileError as e:
                skipped.append(str(e))
                continue
            table_seen = seen.setdefault(contract.table, {})
            new_keys: list[str] = []
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
                new_keys.append(partition_key)
                table_seen[partition_key] = stamp
            # Consecutive days go in one run (the daily assets load a range in one run and one
            # dbt invocation), so a first start with 90 days of files is one run, not 180.
            for first, last in _consecutive_ranges(new_keys):
                stamps = ",".join(table_seen[k] for k in _keys_between(new_keys, first, last))
                by_range.setdefault((first, last), []).append((contract.table, stamps))
        # Sources with the same new days share a run: one dbt invocation builds the facts in
        # dependency order (as separate runs, the chargebacks' relationship test could run
        # before fct_transactions existed).
        for (first, last), tables in sorted(by_range.items()):
            requests.append(
                dg.RunRequest(
                    run_key=":".join(
                        [*sorted(t for t, _ in tables), first, last]
                        + [_digest(",".join(s for _, s in sorted(tables)))]
                    ),
                    asset_selection=sorted(set().union(*(daily_targets[t] for t, _ in tables))),
                    tags={
                        "headwater/trigger": "landing_sensor",
                        "dagster/asset_partition_range_start": first,
                        "dagster/asset_partition_range_end": last,
                    },
                )
            )

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
