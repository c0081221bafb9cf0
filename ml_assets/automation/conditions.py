"""What runs the ML half unattended: the declarative automation conditions, evaluated by the
daemon's `ml_automation` sensor.

    features                 rebuilt when the marts update (eager)
    scores/<name>            the newest day, when its features land; the unscored days of the
                             last 90, when a champion arrives
    monitoring/<name>/drift  a scored day, when its scores update
    models/<name>/training_set, and after it the model, evaluation and champion: a (re)train
                             when there is no model yet or it fails its freshness policy (asked
                             again every RETRY_CRON tick while that lasts) and on the spec's
                             weekly backstop cron

What a condition cannot do (measure performance once labels mature, retrain on a failed
monitoring check) is the monitor sensor's, in `ml_assets.automation.monitor`.

Never two retrains of one model at once: the conditions exclude in-progress assets and the
monitor sensor defers while a run of the model's training set is queued or running. A failed
retrain does not stick: the freshness condition asks again at the next retry tick, and the
sensor asks again on the next failing check.
"""

from datetime import timedelta

import dagster as dg

from headwater_core.names import AUTOMATION_SENSOR
from ml_assets.automation.keys import keys_of
from ml_assets.models.spec import ModelSpec

AC = dg.AutomationCondition

# While a model keeps failing its freshness policy, a new retrain may be asked for once per tick
# of this cron: a failed retrain is retried later, not in a loop.
RETRY_CRON = "0 */6 * * *"

SCORES_BACKFILL_DAYS = 90


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
    challenger: in the retrain's own run the champion step already recorded that it kept the
    champion, and nothing new would come of asking for it again."""
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
    """The sensor that evaluates every asset's automation condition in the ML location."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=(
            "Declarative automation of the ML location: features follow the marts, the newest "
            "day is scored and its drift measured, stale models retrain (see ml_assets/"
            "automation/conditions.py)."
        ),
    )
