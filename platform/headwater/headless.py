"""Materialising a selection of the graph (default: all of it but monitoring) in one process, for
a range of days, without the daemon.

Both code locations' assets run in one in-process run: unpartitioned assets once, daily ones for
the whole range at once (their backfill policy is a single run), in dependency order. The run is
recorded in the instance ($DAGSTER_HOME), so it shows in the UI like any other.
"""

from dataclasses import dataclass, field
from datetime import date

import dagster as dg

from headwater.errors import UserError, one_line
from headwater.run_launcher import recover_dead_runs
from headwater_core.compute import frozen_heap
from headwater_core.config import environ, once_per_project
from headwater_core.names import MODELS, MONITORING, SERVING, TRIGGER_TAG
from headwater_core.partitions import PartitionRangeError, partition_keys_between


@dataclass
class AssetSummary:
    """What one asset's materialisation in the run reported."""

    key: str
    seconds: float = 0.0
    row_count: int | None = None
    partition_row_count: int | None = None
    partitions: int = 0
    """partitions materialised (0: an unpartitioned asset, or none)"""
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    failed_checks_said: list[str] = field(default_factory=list)
    """each failed check's description"""


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


# What `headwater materialize` runs unless told otherwise: drift and performance are measured per
# scored day (by automation, or `headwater monitor` for a range), not after every load; served
# traffic is loaded once a day's log is complete, not with the warehouse.
EVERYTHING_BUT_MONITORING = dg.AssetSelection.all() - dg.AssetSelection.groups(MONITORING, SERVING)
# Training, evaluation and the champion: what a score-only run leaves out.
TRAINING = dg.AssetSelection.groups(MODELS)


def materialize_range(
    start: str | None,
    end: str | None,
    instance: dg.DagsterInstance | None = None,
    resources: dict | None = None,
    selection: dg.AssetSelection | None = None,
    run_config: dict | None = None,
) -> RangeResult:
    """Materialise `selection` (default: everything but monitoring) for the partitions
    start..end, in one run. A range is needed only if the selection holds a partitioned asset.

    Raises UserError for a range that is not one (outside the partitions, reversed, not keys)
    and for a selection that selects nothing."""
    # The range is checked before the code locations load: a wrong date fails in a second.
    keys = partition_range(start, end) if start or end else []
    if selection is None and not EVERYTHING_BUT_MONITORING.resolve(_asset_graph()):
        # A new project with no sources or specs yet: nothing to do is not an error.
        return RangeResult(success=True, run_id="none", start="", end="", assets={})
    selection = selection if selection is not None else EVERYTHING_BUT_MONITORING
    if not selects_partitioned(selection):
        keys = []
    elif not keys:
        raise UserError("the selection holds partitioned assets: give --start and --end")
    instance = instance or dg.DagsterInstance.get()
    # A killed earlier run may hold the DuckDB pool's slot, and no daemon may be running to
    # give it back: this run would wait for it for ever.
    recover_dead_runs(instance)
    with environ({ONE_PLANNED_EVENT_PER_ASSET: "true"}):
        result = _materialize(keys, instance, resources, selection, run_config)
    return RangeResult(
        success=result.success,
        run_id=result.run_id,
        start=keys[0] if keys else "",
        end=keys[-1] if keys else "",
        assets=_summarise(result, instance),
        failure=_first_failure(result),
    )


def selected_keys(selection: dg.AssetSelection) -> set[dg.AssetKey]:
    """The asset keys `selection` picks among both code locations' assets; UserError if none."""
    from dagster._core.errors import DagsterError

    try:
        keys = selection.resolve(_asset_graph())
    except DagsterError as e:  # a key that no asset has, a malformed string
        raise UserError(one_line(e)) from e
    if not keys:
        raise UserError(f"the selection {selection} matches no asset")
    return keys


def selects_partitioned(selection: dg.AssetSelection) -> bool:
    graph = _asset_graph()
    return any(graph.get(key).partitions_def is not None for key in selected_keys(selection))


def _build_asset_graph():
    from data_platform.definitions import defs as data_defs
    from ml_assets.definitions import defs as ml_defs

    return dg.Definitions(
        assets=all_materializable_assets(),
        resources={**data_defs.resources, **ml_defs.resources},
    ).resolve_asset_graph()


# Per project: one process (a test session, a notebook) may work on several.
_asset_graph = once_per_project(_build_asset_graph)


def partition_range(start: str | None, end: str | None) -> list[str]:
    """The partition keys from `start` to `end`, both included: dates, or keys of the project's
    grain (headwater_core.partitions.partition_keys_between).

    Raises UserError naming what is wrong: a missing or malformed bound, a reversed range, a
    range outside the partitions (with the setting that bounds them)."""
    if not start or not end:
        raise UserError("give both --start and --end")
    for flag, bound in (("--start", start), ("--end", end)):
        try:
            date.fromisoformat(bound[:10])
        except ValueError:
            raise UserError(f"{flag} {bound!r} is not a date (YYYY-MM-DD)") from None
    try:
        return partition_keys_between(start, end)
    except PartitionRangeError as e:
        raise UserError(str(e)) from None


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

    partition_range_tags = (
        {
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        }
        if keys
        else {}
    )
    assets = all_materializable_assets()
    resources = resources or {**data_defs.resources, **ml_defs.resources}
    # The loaded libraries and Definitions stay out of the run's full garbage collections.
    with frozen_heap():
        return dg.materialize(
            assets,
            instance=instance,
            resources=resources,
            selection=selection,
            tags={**partition_range_tags, TRIGGER_TAG: "headless"},
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
        s.partitions += mat.partition is not None
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
                s.failed_checks_said.append(f"{evaluation.check_name}: {evaluation.description}")
    return summaries


def _first_failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            return f"{event.step_key}: {error.message.strip() if error else 'failed'}"
    return ""


def print_summary(result: RangeResult, seconds: float, command: str = "materialize") -> None:
    """A markdown table of what the run did, one line per asset, then what its failed checks
    said."""
    status = "succeeded" if result.success else "FAILED"
    days = f" {result.start}..{result.end}" if result.start else ""
    print(f"\nheadwater {command}{days}: {status} in {seconds:.1f} s (run {result.run_id})\n")
    print("| asset | step s | partitions | rows | rows in range | checks passed | checks failed |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for key in sorted(result.assets):
        a = result.assets[key]
        print(
            f"| {key} | {a.seconds:.1f} | {a.partitions or ''} | "
            f"{a.row_count if a.row_count is not None else ''} | "
            f"{a.partition_row_count if a.partition_row_count is not None else ''} | "
            f"{a.checks_passed} | {', '.join(a.checks_failed)} |"
        )
    said = [
        f"{key} {text}"
        for key in sorted(result.assets)
        for text in result.assets[key].failed_checks_said
    ]
    if said:
        print("\nfailed checks:\n" + "\n".join(f"- {line}" for line in said))
    if result.failure:
        print(f"\nfirst failure: {result.failure}")
