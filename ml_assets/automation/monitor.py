"""The monitor sensor: what a condition cannot do without a cycle (drift and performance are
measured downstream of the model they retrain) or without reading data (label maturity).

    performance   a scored day's realised performance, once its labels have matured
    retrain       when a drift or performance check fails at ERROR severity

It reads only the Dagster instance, never DuckDB. It defers a retrain while a run of the model's
training set is queued or running, and asks again on the next failing check after a failed one.
"""

import json
from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg

from headwater_core.names import (
    DRIFT_CHECK,
    MONITOR_SENSOR,
    PERFORMANCE_CHECK,
    PERFORMANCE_REASON_TAG,
    REASON_TAG,
    RETRAIN_TAG,
    performance_job,
    retrain_job,
)
from ml_assets.automation.keys import keys_of
from ml_assets.models.spec import ModelSpec

MAX_PERFORMANCE_RUNS_PER_TICK = 7
PERFORMANCE_LOOKBACK_DAYS = 7

# Why a performance run was asked for (a retrain's reason goes under names.REASON_TAG).

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def monitor_tick(
    specs: Sequence[ModelSpec], instance: dg.DagsterInstance, cursor: dict
) -> tuple[list[dg.RunRequest], list[str], dict]:
    """One evaluation of the monitor sensor: run requests, what it decided and why, new cursor.

    The cursor holds, per model, the last scores materialization read, the scored days whose
    labels have not matured yet (with the day they will: the day plus the `label_lag_days` the
    scores recorded), the end of the newest scored day, and the last check execution acted on.
    """
    requests: list[dg.RunRequest] = []
    log: list[str] = []
    cursor = json.loads(json.dumps(cursor))  # a copy the caller's cursor does not share
    for spec in specs:
        name = spec.name
        k = keys_of(name)
        state = cursor.setdefault(
            name, {"after": None, "pending": {}, "newest_day_end": "", "handled": {}}
        )
        read_scored_days(instance, k["scores"], state)
        requests += ask_for_performance(name, state, log)
        requests += ask_for_retrains(instance, name, k, state, log)
    return requests, log, cursor


def _day_end(partition_key: str) -> str:
    return (date.fromisoformat(partition_key) + timedelta(days=1)).isoformat()


def read_scored_days(instance: dg.DagsterInstance, scores_key: dg.AssetKey, state: dict) -> None:
    """Into the model's cursor `state`: the scored days materialised since the last tick, with
    the time their last label matures, and the end of the newest scored day."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=scores_key, after_storage_id=state["after"]),
        limit=1000,
        ascending=True,
    )
    for record in result.records:
        state["after"] = record.storage_id
        partition = record.partition_key
        if partition is None:
            continue
        lag = record.asset_materialization.metadata.get("label_lag_days")
        if lag is not None:
            matures = date.fromisoformat(partition) + timedelta(days=int(lag.value))
            state["pending"][partition] = [matures.isoformat(), record.storage_id]
        state["newest_day_end"] = max(state["newest_day_end"], _day_end(partition))


def _drop_too_old(name: str, state: dict, log: list[str]) -> None:
    """Days that matured more than a week before the newest data (a backfilled history) are
    dropped: measuring them is a backfill of the performance asset, not a flood of runs from a
    sensor."""
    newest = state["newest_day_end"]
    horizon = (
        (date.fromisoformat(newest) - timedelta(days=PERFORMANCE_LOOKBACK_DAYS)).isoformat()
        if newest
        else ""
    )
    too_old = [p for p, (m, _) in state["pending"].items() if m < horizon]
    for partition in too_old:
        del state["pending"][partition]
    if too_old:
        log.append(
            f"{name}: {len(too_old)} scored days matured before {horizon}: not measured "
            f"(backfill monitoring/{name}/performance for them)"
        )


def ask_for_performance(name: str, state: dict, log: list[str]) -> list[dg.RunRequest]:
    """Performance of the scored days whose labels have matured by the newest data, oldest
    first and a bounded number per tick; the days asked for leave the cursor's pending days."""
    _drop_too_old(name, state, log)
    requests = []
    for partition, (matures_at, storage_id) in sorted(state["pending"].items()):
        if len(requests) == MAX_PERFORMANCE_RUNS_PER_TICK:
            break
        if matures_at <= state["newest_day_end"]:
            requests.append(
                dg.RunRequest(
                    job_name=performance_job(name),
                    partition_key=partition,
                    run_key=f"performance:{name}:{partition}:{storage_id}",
                    tags={PERFORMANCE_REASON_TAG: f"labels of {partition} matured {matures_at}"},
                )
            )
            log.append(f"{name}: performance of {partition} (labels matured {matures_at})")
            del state["pending"][partition]
    return requests


def ask_for_retrains(
    instance: dg.DagsterInstance,
    name: str,
    keys: dict[str, dg.AssetKey],
    state: dict,
    log: list[str],
) -> list[dg.RunRequest]:
    """A retrain for each monitoring check (drift, performance) whose newest execution failed
    at ERROR severity, unless it was handled, a retrain is running, or the model has retrained
    since."""
    requests = []
    for asset, check in (("drift", DRIFT_CHECK), ("performance", PERFORMANCE_CHECK)):
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(keys[asset], check), limit=1
        )
        if not history or history[0].id <= state["handled"].get(check, 0):
            continue
        request = _retrain_for(instance, name, keys, check, history[0], state, log)
        if request is not None:
            requests.append(request)
    return requests


def _retrain_for(
    instance: dg.DagsterInstance,
    name: str,
    keys: dict[str, dg.AssetKey],
    check: str,
    record,
    state: dict,
    log: list[str],
) -> dg.RunRequest | None:
    """The retrain one new check execution `record` asks for, if any; marks it handled unless
    it must be looked at again."""
    failed, description = _failed_at_error(record)
    if not failed:
        state["handled"][check] = record.id
        return None
    if _retrain_active(instance, name, keys["training_set"]):
        # Not handled yet: looked at again once the running retrain has finished.
        log.append(f"{name}: {check} failed, a retrain is already running: wait")
        return None
    model_event = instance.get_latest_materialization_event(keys["model"])
    if model_event is not None and model_event.timestamp > record.event.timestamp:
        state["handled"][check] = record.id
        log.append(f"{name}: {check} failed before the latest retrain: nothing to do")
        return None
    state["handled"][check] = record.id
    reason = f"{check} failed at ERROR: {description}"
    log.append(f"{name}: retrain ({reason})")
    return dg.RunRequest(
        job_name=retrain_job(name),
        run_key=f"retrain:{name}:{check}:{record.id}",
        tags={RETRAIN_TAG: name, REASON_TAG: reason[:250]},
    )


def _retrain_active(instance: dg.DagsterInstance, name: str, training_set_key) -> bool:
    """A queued or running retrain of the model: a run of its retrain job (tagged), or any run
    whose asset selection includes its training set (declarative automation's runs)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE_STATUSES))
    return any(
        run.tags.get(RETRAIN_TAG) == name or training_set_key in (run.asset_selection or ())
        for run in runs
    )


def _failed_at_error(record) -> tuple[bool, str]:
    """Whether a check execution record failed at ERROR severity, and its description."""
    evaluation = record.event.asset_check_evaluation if record.event else None
    if evaluation is None:
        return False, ""
    failed = not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    return failed, evaluation.description or ""


def build_monitor_sensor(
    specs: Sequence[ModelSpec], jobs: Sequence[dg.JobDefinition]
) -> dg.SensorDefinition:
    """The `model_monitor` sensor: `monitor_tick` once a minute, its cursor kept by Dagster."""

    @dg.sensor(
        name=MONITOR_SENSOR,
        jobs=list(jobs),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Asks for a scored day's realised performance once its labels have matured, and "
            "for a retrain when a drift or performance check fails at ERROR severity. Reads "
            "only the Dagster instance, never DuckDB."
        ),
    )
    def model_monitor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests, log, cursor = monitor_tick(specs, context.instance, cursor)
        for line in log:
            context.log.info(line)
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if not requests:
            return dg.SkipReason(
                "; ".join(log) or "no matured labels to measure, no failed monitoring check"
            )
        return requests

    return model_monitor
