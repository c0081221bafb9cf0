"""The landing sensor: a new or changed landing file becomes a run for its partition.

It only lists files and reads the Dagster instance; it never opens DuckDB, whose single-writer
lock a sensor must not compete for. A daily file asks for its raw partition and the daily
warehouse models built from it; a new snapshot file asks for its raw table and the unpartitioned
warehouse models. Daily runs wait until the unpartitioned warehouse (staging views, dimensions)
has been built once, because the daily facts select from it. A file modified within its
contract's settle interval waits for a later tick. What counts as new is `landing_scan`'s; this
module turns a scan into run requests.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from data_platform.raw.assets import partition_windows
from data_platform.raw.contract import SourceContract
from data_platform.raw.landing import PartitionWindow, covered_keys, file_window
from data_platform.raw.landing_scan import KeysFor, LandingScan, digest, scan_landing
from headwater_core.names import LANDING_SENSOR, TRIGGER_TAG
from headwater_core.partitions import partitions_def
from headwater_core.resources import LandingZone

TRIGGER_TAGS = {TRIGGER_TAG: LANDING_SENSOR}


@dataclass(frozen=True)
class SensorTargets:
    """The assets a landing file asks for: per daily table, its raw asset and the daily models
    downstream of it; for any snapshot, every snapshot raw asset and the unpartitioned models."""

    daily: dict[str, list[dg.AssetKey]]
    snapshot: list[dg.AssetKey]

    @property
    def selection(self) -> set[dg.AssetKey]:
        return set(self.snapshot).union(*self.daily.values())


def sensor_targets(
    contracts: Sequence[SourceContract],
    all_assets: Sequence[dg.AssetsDefinition],
    daily_keys: set[dg.AssetKey],
    unpartitioned_warehouse_keys: set[dg.AssetKey],
) -> SensorTargets:
    def with_daily_downstream(key: dg.AssetKey) -> list[dg.AssetKey]:
        downstream = set(dg.AssetSelection.assets(key).downstream().resolve(all_assets))
        return sorted({key} | (downstream & daily_keys))

    return SensorTargets(
        daily={
            c.table: with_daily_downstream(dg.AssetKey(list(c.asset_key)))
            for c in contracts
            if not c.snapshot
        },
        snapshot=sorted(
            {dg.AssetKey(list(c.asset_key)) for c in contracts if c.snapshot}
            | unpartitioned_warehouse_keys
        ),
    )


def run_requests(scan: LandingScan, targets: SensorTargets) -> list[dg.RunRequest]:
    """One run for every changed snapshot, then one per range of new days."""
    requests: list[dg.RunRequest] = []
    if scan.snapshot_changes:
        requests.append(
            dg.RunRequest(
                run_key="snapshots:" + ",".join(s for _, s in scan.snapshot_changes),
                asset_selection=targets.snapshot,
                tags={**TRIGGER_TAGS},
            )
        )
    # Sources with the same new days share a run: one dbt invocation builds the facts in
    # dependency order (as separate runs, the chargebacks' relationship test could run
    # before fct_transactions existed).
    for (first, last), tables in sorted(scan.daily_ranges.items()):
        requests.append(
            dg.RunRequest(
                run_key=":".join(
                    [*sorted(t for t, _ in tables), first, last]
                    + [digest(",".join(s for _, s in sorted(tables)))]
                ),
                asset_selection=sorted(set().union(*(targets.daily[t] for t, _ in tables))),
                tags={
                    **TRIGGER_TAGS,
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
            )
        )
    return requests


def skip_reason(scan: LandingScan) -> str:
    if scan.waiting:
        return f"{scan.waiting} daily files wait for the warehouse's first build (snapshot run)"
    reasons = list(scan.skipped)
    if scan.settling:
        reasons.append(
            f"{len(scan.settling)} file(s) may still be written, asked for once settled: "
            + ", ".join(scan.settling)
        )
    return "; ".join(reasons) if reasons else "no new landing files"


def keys_for(partitions_def: dg.TimeWindowPartitionsDefinition) -> KeysFor:
    """The partitions a file of an hour's, a month's or a span delivery covers."""
    windows: list[PartitionWindow] = []

    def covered(contract: SourceContract, key: str) -> list[str]:
        if not windows:  # only a tick that sees such a file pays for the windows
            windows.extend(partition_windows(partitions_def, partitions_def.get_partition_keys()))
        return covered_keys(file_window(contract, key), windows)

    return covered


def build_landing_sensor(
    contracts: Sequence[SourceContract],
    all_assets: Sequence[dg.AssetsDefinition],
    daily_keys: set[dg.AssetKey],
    unpartitioned_warehouse_keys: set[dg.AssetKey],
) -> dg.SensorDefinition:
    """A sensor over every contract's landing files, requesting runs downstream of each."""
    targets = sensor_targets(contracts, all_assets, daily_keys, unpartitioned_warehouse_keys)
    in_partitions = partitions_def().has_partition_key

    @dg.sensor(
        name=LANDING_SENSOR,
        description=(
            "Watches the landing folder and requests a run for each new or changed file: "
            "its raw partition and the warehouse models built from it."
        ),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*targets.selection),
    )
    def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        warehouse_built = all(
            context.instance.get_latest_materialization_event(k) is not None
            for k in unpartitioned_warehouse_keys
        )
        scan = scan_landing(
            context.cursor,
            contracts,
            landing.resolved_path(),
            warehouse_built,
            in_partitions,
            keys_for=keys_for(partitions_def()),
        )
        requests = run_requests(scan, targets)
        if not requests:
            return dg.SkipReason(skip_reason(scan))
        for message in scan.skipped:
            context.log.warning(message)
        for message in scan.settling:
            context.log.info(f"may still be written, asked for on a later tick: {message}")
        context.update_cursor(scan.cursor())
        return requests

    return landing_sensor
