"""Materialising the whole graph in one process, for a range of days, without the daemon.

Both code locations' assets run in one in-process run: unpartitioned assets once, daily ones for
the whole range at once (their backfill policy is a single run), in dependency order. The run is
recorded in the instance ($DAGSTER_HOME), so it shows in the UI like any other.
"""

from dataclasses import dataclass, field

import dagster as dg

from headwater.run_launcher import recover_dead_runs
from headwater_core.config import environ
from headwater_core.names import TRIGGER_TAG
from headwater_core.partitions import partition_keys_between


@dataclass
class AssetSummary:
    """What one asset's materialisation in the run reported."""

    key: str
    seconds: float = 0.0
    row_count: int | None = None
    partition_row_count: int | None = None
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)


@dataclass
class RangeResult:
    success: bool
    run_id: str
    start: str
    end: str
    assets: dict[str, AssetSummary]
    failure: str = ""


def all_materializable_assets() -> list[dg.AssetsDefinition]:
    """Every asset of both code locations (the ML location's references to marts excluded)."""
    from data_platform.definitions import defs as data_defs
    from ml_assets.definitions import defs as ml_defs

    assets = []
    for defs in (data_defs, ml_defs):
        assets.extend(
            a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.is_executable
        )
    return assets


def materialize_range(
    start: str,
    end: str,
    instance: dg.DagsterInstance | None = None,
    resources: dict | None = None,
    selection: dg.AssetSelection | None = None,
    run_config: dict | None = None,
) -> RangeResult:
    """Materialise `selection` for the day partitions start..end.

    The default is everything but the monitoring group: drift and performance are measured per
    scored day (by automation, or per partition from the UI), not over a range in one run.
    """
    keys = partition_keys_between(start, end)
    instance = instance or dg.DagsterInstance.get()
    # A killed earlier run may hold the DuckDB pool's slot, and no daemon may be running to
    # give it back: this run would wait for it for ever.
    recover_dead_runs(instance)
    with environ({ONE_PLANNED_EVENT_PER_ASSET: "true"}):
        result = _materialize(keys, instance, resources, selection, run_config)
    return RangeResult(
        success=result.success,
        run_id=result.run_id,
        start=keys[0],
        end=keys[-1],
        assets=_summarise(result, instance),
        failure=_first_failure(result),
    )


# Record the run's plan as one event per asset instead of one per asset and day.
#
# On the embedded SQLite instance a run over a range of days records, before its first step,
# an ASSET_MATERIALIZATION_PLANNED event for every asset *and every day of the range*,
# unpartitioned assets included (they inherit the run's partition range): 30 assets x 120 days
# = 3,600 events, ~10 ms each, 40 s spent before any work, growing with history rather than
# data (docs/benchmarks.md). Dagster's own switch, read when the run is created, writes one
# event per asset carrying the range instead. What it costs: the UI shows a range's days as
# missing rather than in progress while this run goes, and as missing rather than failed if
# it fails (the run itself is failed, and `headwater materialize` prints the failing step).
# Only this headless path uses it: runs the daemon launches keep per-partition events, which
# automation needs to see days in progress and not request them twice.
ONE_PLANNED_EVENT_PER_ASSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def _materialize(keys, instance, resources, selection, run_config) -> dg.ExecuteInProcessResult:
    from data_platform.definitions import defs as data_defs
    from ml_assets.definitions import defs as ml_defs

    return dg.materialize(
        all_materializable_assets(),
        instance=instance,
        resources=resources or {**data_defs.resources, **ml_defs.resources},
        selection=selection or dg.AssetSelection.all() - dg.AssetSelection.groups("monitoring"),
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
            TRIGGER_TAG: "headless",
        },
        run_config=run_config,
        raise_on_error=False,
    )


def _summarise(
    result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance
) -> dict[str, AssetSummary]:
    summaries: dict[str, AssetSummary] = {}
    step_seconds: dict[str, float] = {}
    started: dict[str, float] = {}
    # Step durations come from the instance's event log, which stamps every event.
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif (
            event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started
        ):
            step_seconds[event.step_key] = entry.timestamp - started[event.step_key]
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        key = mat.asset_key.to_user_string()
        s = summaries.setdefault(key, AssetSummary(key))
        s.seconds = step_seconds.get(event.step_key, 0.0)
        if "dagster/row_count" in mat.metadata:
            s.row_count = mat.metadata["dagster/row_count"].value
        if "dagster/partition_row_count" in mat.metadata:
            s.partition_row_count = mat.metadata["dagster/partition_row_count"].value
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            key = evaluation.asset_key.to_user_string()
            s = summaries.setdefault(key, AssetSummary(key))
            if evaluation.passed:
                s.checks_passed += 1
            else:
                s.checks_failed.append(evaluation.check_name)
    return summaries


def _first_failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            return f"{event.step_key}: {error.message.strip() if error else 'failed'}"
    return ""


def print_summary(result: RangeResult, seconds: float) -> None:
    """A markdown table of what the run did, one line per asset."""
    status = "succeeded" if result.success else "FAILED"
    print(
        f"\nheadwater materialize {result.start}..{result.end}: {status} in {seconds:.1f} s "
        f"(run {result.run_id})\n"
    )
    print("| asset | step s | rows | rows in range | checks passed | checks failed |")
    print("|---|---:|---:|---:|---:|---|")
    for key in sorted(result.assets):
        a = result.assets[key]
        print(
            f"| {key} | {a.seconds:.1f} | {a.row_count if a.row_count is not None else ''} | "
            f"{a.partition_row_count if a.partition_row_count is not None else ''} | "
            f"{a.checks_passed} | {', '.join(a.checks_failed)} |"
        )
    if result.failure:
        print(f"\nfirst failure: {result.failure}")
