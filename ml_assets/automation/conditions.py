"""What runs the ML half unattended: declarative automation conditions and the monitor sensor.

Declarative automation (evaluated by the daemon's `ml_automation` sensor):
    features                 rebuilt when the marts update (eager)
    scores/<name>            the newest day, when its features land; the unscored days of the
                             last 90, when a champion arrives
    monitoring/<name>/drift  a scored day, when its scores update
    models/<name>/training_set, and after it the model, evaluation and champion: a (re)train
                             when there is no model yet or it fails its freshness policy (asked
                             again every RETRY_CRON tick while that lasts) and on the spec's
                             weekly backstop cron

The monitor sensor does what a condition cannot without a cycle (drift and performance are
measured downstream of the model they retrain) or without reading data (label maturity):
    performance              a scored day's realised performance, once its labels have matured
    retrain                  when a drift or performance check fails at ERROR severity

Never two retrains of one model at once: the conditions exclude in-progress assets and the sensor
defers while a run of the model's training set is queued or running. A failed retrain does not
stick: the freshness condition asks again at the next retry tick, and the sensor asks again on
the next failing check.
"""

import json
from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg

from ml_assets.models.spec import ModelSpec

AC = dg.AutomationCondition

# While a model keeps failing its freshness policy, a new retrain may be asked for once per tick
# of this cron: a failed retrain is retried later, not in a loop.
RETRY_CRON = "0 */6 * * *"

MAX_PERFORMANCE_RUNS_PER_TICK = 7
PERFORMANCE_LOOKBACK_DAYS = 7
SCORES_BACKFILL_DAYS = 90

DRIFT_CHECK = "drift_below_threshold"
PERFORMANCE_CHECK = "performance_not_decayed"
RETRAIN_TAG = "headwater/retrain"
REASON_TAG = "headwater/retrain_reason"

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def keys_of(name: str) -> dict[str, dg.AssetKey]:
    """The asset keys one model spec produces, by role."""
    return {
        "training_set": dg.AssetKey(["models", name, "training_set"]),
        "model": dg.AssetKey(["models", name, "model"]),
        "evaluation": dg.AssetKey(["models", name, "evaluation"]),
        "champion": dg.AssetKey(["models", name, "champion"]),
        "scores": dg.AssetKey(["scores", name]),
        "drift": dg.AssetKey(["monitoring", name, "drift"]),
        "performance": dg.AssetKey(["monitoring", name, "performance"]),
    }


def _ready() -> AC:
    return ~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress()


def features_condition() -> AC:
    """Feature sets follow the marts: `eager()` with a weaker missing-dependency guard.

    `eager()`'s own guard, for a daily fact, means *any* day partition missing, and the days
    before the data began always are: it would hold the features back forever. What must hold
    them back is a mart with nothing in it yet (on a first start the landing sensor loads the
    snapshot dimensions before the daily facts), so: every mart has at least one partition."""
    every_mart_exists = AC.all_deps_match(~AC.missing()).with_label("every mart has data")
    return (AC.eager().without(~AC.any_deps_missing()) & every_mart_exists).with_label(
        "eager (marts updated)"
    )


def follows_training() -> AC:
    """Model and evaluation: whenever the step before them is (re)built."""
    return AC.eager()


def champion_condition() -> AC:
    """The champion follows a new evaluation, unless that evaluation's gate refused the
    challenger: a refused retrain's champion step ran and rightly did nothing, and `eager()`
    alone would ask for it again (the asset is only materialised when the alias moves)."""
    refused = (AC.any_checks_match(AC.check_failed()) & ~AC.will_be_requested()).with_label(
        "gate refused"
    )
    return (AC.eager() & ~AC.any_deps_match(refused)).with_label("eager, unless the gate refused")


def scores_condition(champion_key: dg.AssetKey) -> AC:
    """The newest day, scored when its features land, by the champion of that moment; and when
    a champion arrives, every unscored day of the last SCORES_BACKFILL_DAYS (the first champion
    of a model scores the recent history, in one run: the asset's backfill policy).

    A new champion does not re-score days already scored: those scores are what production
    served, and realised performance is judged on them. Not `eager()`: its `newly_missing` would
    score each new day at midnight, before the day's data has landed.
    """
    champion = dg.AssetSelection.assets(champion_key)
    new_features = (AC.in_latest_time_window() & AC.any_deps_updated().ignore(champion)).with_label(
        "features updated"
    )
    unscored_for_a_champion = (
        AC.in_latest_time_window(lookback_delta=timedelta(days=SCORES_BACKFILL_DAYS))
        & AC.any_deps_updated().allow(champion)
        & AC.missing()
    ).with_label("a champion for unscored days")
    return ((new_features | unscored_for_a_champion).since_last_handled() & _ready()).with_label(
        "score new days"
    )


def drift_condition(feature_key: dg.AssetKey) -> AC:
    """A scored day of the last week, measured again whenever its scores change.

    The feature set is a dependency (the report reads the scored rows' features) but not a
    trigger: a rebuilt feature set changes no scored day.
    """
    return (
        AC.in_latest_time_window(lookback_delta=timedelta(days=7))
        & AC.any_deps_updated()
        .ignore(dg.AssetSelection.assets(feature_key))
        .since_last_handled()
        .with_label("scores updated")
        & _ready()
    ).with_label("measure drift of a scored day")


def retrain_condition(spec: ModelSpec) -> AC:
    """On the training set, the first asset of a retrain; the others follow it."""
    model_key = keys_of(spec.name)["model"]
    stale = AC.asset_matches(model_key, AC.freshness_failed()).with_label(
        "model failed its freshness policy"
    )
    first = AC.asset_matches(model_key, AC.missing()).with_label("no model yet")
    asked_recently = (
        AC.newly_requested()
        .since(AC.cron_tick_passed(RETRY_CRON))
        .with_label(f"retrain asked for since the last retry tick ({RETRY_CRON})")
    )
    backstop = (
        AC.cron_tick_passed(spec.retrain_cron)
        .since_last_handled()
        .with_label(f"weekly backstop ({spec.retrain_cron})")
    )
    return ((((stale | first) & ~asked_recently) | backstop) & _ready()).with_label(
        "train: no model yet, model stale, or weekly backstop"
    )


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "ml_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=(
            "Declarative automation of the ML location: features follow the marts, the newest "
            "day is scored and its drift measured, stale models retrain (see ml_assets/"
            "automation.py)."
        ),
    )


def build_jobs(specs: Sequence[ModelSpec]) -> list[dg.JobDefinition]:
    """Per model, the two jobs the monitor sensor launches."""
    jobs = []
    for spec in specs:
        k = keys_of(spec.name)
        jobs.append(
            dg.define_asset_job(
                f"retrain_{spec.name}",
                selection=dg.AssetSelection.assets(
                    k["training_set"], k["model"], k["evaluation"], k["champion"]
                ),
                description=f"Retrain {spec.name}: a new challenger through the promotion gate.",
                tags={RETRAIN_TAG: spec.name},
            )
        )
        jobs.append(
            dg.define_asset_job(
                f"performance_{spec.name}",
                selection=dg.AssetSelection.assets(k["performance"]),
                description=f"Realised performance of {spec.name} on a day's matured labels.",
            )
        )
    return jobs


# -- the monitor sensor ------------------------------------------------------------------------


def _day_end(partition_key: str) -> str:
    return (date.fromisoformat(partition_key) + timedelta(days=1)).isoformat()


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

        # 1. Scored days, with the time their last label matures.
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=k["scores"], after_storage_id=state["after"]),
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

        # 2. Performance of the scored days whose labels have matured by the newest data, oldest
        #    first and a bounded number per tick. Days that matured more than a week before the
        #    newest data (a backfilled history) are dropped: measuring them is a backfill of the
        #    performance asset, not a flood of runs from a sensor.
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
        asked = 0
        for partition, (matures_at, storage_id) in sorted(state["pending"].items()):
            if asked == MAX_PERFORMANCE_RUNS_PER_TICK:
                break
            if matures_at <= state["newest_day_end"]:
                asked += 1
                requests.append(
                    dg.RunRequest(
                        job_name=f"performance_{name}",
                        partition_key=partition,
                        run_key=f"performance:{name}:{partition}:{storage_id}",
                        tags={"headwater/reason": f"labels of {partition} matured {matures_at}"},
                    )
                )
                log.append(f"{name}: performance of {partition} (labels matured {matures_at})")
                del state["pending"][partition]

        # 3. A retrain when a monitoring check failed at ERROR severity.
        for asset, check in (("drift", DRIFT_CHECK), ("performance", PERFORMANCE_CHECK)):
            check_key = dg.AssetCheckKey(k[asset], check)
            history = instance.event_log_storage.get_asset_check_execution_history(
                check_key, limit=1
            )
            if not history or history[0].id <= state["handled"].get(check, 0):
                continue
            record = history[0]
            failed, description = _failed_at_error(record)
            if not failed:
                state["handled"][check] = record.id
                continue
            if _retrain_active(instance, name, k["training_set"]):
                # Not handled yet: looked at again once the running retrain has finished.
                log.append(f"{name}: {check} failed, a retrain is already running: wait")
                continue
            model_event = instance.get_latest_materialization_event(k["model"])
            if model_event is not None and model_event.timestamp > record.event.timestamp:
                state["handled"][check] = record.id
                log.append(f"{name}: {check} failed before the latest retrain: nothing to do")
                continue
            state["handled"][check] = record.id
            reason = f"{check} failed at ERROR: {description}"
            requests.append(
                dg.RunRequest(
                    job_name=f"retrain_{name}",
                    run_key=f"retrain:{name}:{check}:{record.id}",
                    tags={RETRAIN_TAG: name, REASON_TAG: reason[:250]},
                )
            )
            log.append(f"{name}: retrain ({reason})")
    return requests, log, cursor


def build_monitor_sensor(
    specs: Sequence[ModelSpec], jobs: Sequence[dg.JobDefinition]
) -> dg.SensorDefinition:
    @dg.sensor(
        name="model_monitor",
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
