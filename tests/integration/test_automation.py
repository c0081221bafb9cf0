"""Each retrain trigger asks for exactly one retrain, and a failed retrain is asked for again later.

The platform's own conditions and monitor sensor, evaluated by Dagster's own code against a real
instance (temporary DAGSTER_HOME) with Dagster's clock frozen at each tick. What the retrain would
do is stood in for by reported materialisations and check results: these tests are about when
the automation asks, the simulation (test_loop_simulation.py) about what the runs then do.
"""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from headwater.dagster_internals import evaluate_freshness, frozen_clock
from headwater_core.names import DRIFT_CHECK, PERFORMANCE_CHECK, REASON_TAG
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import SCORES_BACKFILL_DAYS
from ml_assets.automation.keys import keys_of
from ml_assets.automation.monitor import (
    MAX_PERFORMANCE_RUNS_PER_TICK,
    PERFORMANCE_LOOKBACK_DAYS,
    monitor_tick,
)
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.assets import build_model_assets
from ml_assets.models.engine import TrainingEngine
from ml_assets.models.spec import load_specs
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring.assets import MonitoringReports, build_monitoring_assets

FRAUD = next(s for s in load_specs() if s.name == "fraud_classifier")
K = keys_of(FRAUD.name)
TRAINING = {K["training_set"], K["model"], K["evaluation"], K["champion"]}
# A Tuesday: the demo specs' backstop cron (Monday 04:00) is days away.
T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


class Graph:
    """One model's assets, its upstream tables as specs, and an automation cursor."""

    def __init__(self, spec, instance):
        upstream = [dg.AssetSpec(dg.AssetKey(t.split("."))) for t in spec_tables(spec)]
        self.upstream_keys = [a.key for a in upstream]
        self.defs = dg.Definitions(
            assets=[*upstream, *build_model_assets(spec), *build_monitoring_assets(spec)],
            # Never used (nothing runs here), only required for the definitions to load.
            resources={
                "warehouse": Warehouse(),
                "mlflow_tracking": MlflowTracking(),
                "artifacts": ModelArtifacts(),
                "training_engine": TrainingEngine(),
                "reports": MonitoringReports(),
            },
        )
        self.instance = instance
        self.cursor = None

    def materialized(self, keys, at: datetime) -> None:
        with frozen_clock(at):
            for key in keys:
                self.instance.report_runless_asset_event(dg.AssetMaterialization(key))

    def tick(self, at: datetime) -> set[dg.AssetKey]:
        """Freshness evaluated as the daemon does, then one automation tick: what it asks for of
        the training chain (scores and drift of the newest day follow a new champion too)."""
        with frozen_clock(at):
            evaluate_freshness(self.defs, self.instance)
            result = dg.evaluate_automation_conditions(
                defs=self.defs, instance=self.instance, evaluation_time=at, cursor=self.cursor
            )
        self.cursor = result.cursor
        self.requested = {
            (r.key, partition)
            for r in result.results
            for partition in result.get_requested_partitions(r.key)
        }
        return {key for key, _ in self.requested} & TRAINING


def spec_tables(spec) -> list[str]:
    return sorted({spec.feature_set, spec.label.table})


@pytest.fixture
def trained(instance):
    """A graph whose upstream tables and whole training chain were materialised at T0."""

    def build(spec):
        graph = Graph(spec, instance)
        # The sensor's first evaluation: conditions act on what happens after it, not before.
        assert graph.tick(T0 - timedelta(minutes=1)) == set()
        graph.materialized([*graph.upstream_keys, *sorted(TRAINING, key=str)], T0)
        assert graph.tick(T0 + timedelta(minutes=5)) == set(), "no retrain right after training"
        return graph

    return build


def test_a_model_failing_its_freshness_policy_retrains_once_and_again_after_a_failure(trained):
    # Freshness in hours, so that no weekly backstop falls inside the test's window.
    spec = replace(
        FRAUD, freshness={"warn_after_hours": 1, "fail_after_hours": 2}, retrain_cron="0 4 1 1 *"
    )
    graph = trained(spec)

    assert graph.tick(T0 + timedelta(hours=1, minutes=30)) == set(), "warned, not failed"
    stale = T0 + timedelta(hours=2, minutes=30)  # 12:30
    assert graph.tick(stale) == TRAINING, "one retrain: training set and the steps after it"
    assert graph.tick(stale + timedelta(minutes=10)) == set(), "not asked for twice"

    # That retrain failed (nothing was materialised). The next retry tick (18:00) asks again.
    assert graph.tick(T0 + timedelta(hours=7, minutes=55)) == set()
    assert graph.tick(T0 + timedelta(hours=8, minutes=5)) == TRAINING, "retried later"

    # This one succeeds: the model is fresh and nothing more is asked for.
    graph.materialized(sorted(TRAINING, key=str), T0 + timedelta(hours=8, minutes=20))
    assert graph.tick(T0 + timedelta(hours=8, minutes=30)) == set()
    assert graph.tick(T0 + timedelta(hours=9, minutes=5)) == set()


def test_the_weekly_backstop_retrains_once(trained):
    graph = trained(replace(FRAUD, freshness=None))
    sunday = datetime(2025, 3, 9, 23, 0, tzinfo=UTC)
    assert graph.tick(sunday) == set()
    assert graph.tick(sunday + timedelta(hours=5, minutes=5)) == TRAINING  # Monday 04:05
    assert graph.tick(sunday + timedelta(hours=5, minutes=15)) == set()
    assert graph.tick(sunday + timedelta(days=1)) == set()


def test_a_model_that_does_not_exist_yet_is_trained_once_its_inputs_exist(instance):
    graph = Graph(replace(FRAUD, freshness=None), instance)
    assert graph.tick(T0) == set(), "features missing: nothing to train on"
    graph.materialized(graph.upstream_keys, T0 + timedelta(minutes=1))
    assert graph.tick(T0 + timedelta(minutes=5)) == TRAINING
    assert graph.tick(T0 + timedelta(minutes=10)) == set()


def test_a_first_champion_scores_the_recent_history_and_then_each_new_day_once(trained):
    graph = trained(FRAUD)  # materialised at T0, Tuesday 2025-03-04 10:00
    scored_days = {p for key, p in graph.requested if key == K["scores"]}
    first = max(date(2025, 1, 1), date(2025, 3, 3) - timedelta(days=SCORES_BACKFILL_DAYS))
    assert scored_days == {
        (first + timedelta(days=i)).isoformat() for i in range((date(2025, 3, 3) - first).days + 1)
    }, "the recent history, from the first day partition on"
    assert {p for key, p in graph.requested if key == K["drift"]} == {
        (date(2025, 3, 3) - timedelta(days=i)).isoformat() for i in range(7)
    }, "drift of the last week's scored days follows"
    with frozen_clock(T0 + timedelta(minutes=6)):  # that run succeeded
        for key, partition in graph.requested:
            graph.instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition=partition)
            )
    graph.tick(T0 + timedelta(minutes=10))
    assert graph.requested == set()

    graph.materialized([K["champion"]], T0 + timedelta(minutes=20))  # a new champion
    graph.tick(T0 + timedelta(minutes=25))
    assert graph.requested == set(), "days already scored are not scored again"

    next_morning = datetime(2025, 3, 5, 0, 20, tzinfo=UTC)
    graph.materialized(graph.upstream_keys, next_morning)  # the day's features land
    graph.tick(next_morning + timedelta(minutes=5))
    assert graph.requested == {(K["scores"], "2025-03-04"), (K["drift"], "2025-03-04")}
    graph.tick(next_morning + timedelta(minutes=10))
    assert graph.requested == set()


# -- the monitor sensor: failed drift and performance checks -------------------------------------


def _check_result(instance, asset: str, check: str, passed: bool, severity, at: datetime) -> None:
    with frozen_clock(at):
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=K[asset],
                check_name=check,
                passed=passed,
                severity=severity,
                description=f"{check} {'passed' if passed else 'failed'} in the test",
            )
        )


def _retrains(requests) -> list[dg.RunRequest]:
    return [r for r in requests if r.job_name == f"retrain_{FRAUD.name}"]


@pytest.mark.parametrize(
    ("asset", "check"), [("drift", DRIFT_CHECK), ("performance", PERFORMANCE_CHECK)]
)
def test_a_check_failing_at_error_asks_for_exactly_one_retrain(trained, asset, check):
    graph = trained(FRAUD)
    instance = graph.instance
    error, warn = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN

    _check_result(instance, asset, check, False, warn, T0 + timedelta(hours=1))
    requests, _, cursor = monitor_tick([FRAUD], instance, {})
    assert _retrains(requests) == [], "a warning is an alarm, not a retrain"

    _check_result(instance, asset, check, False, error, T0 + timedelta(hours=2))
    requests, log, cursor = monitor_tick([FRAUD], instance, cursor)
    (retrain,) = _retrains(requests)
    assert check in retrain.tags[REASON_TAG]
    assert any("retrain" in line for line in log)

    requests, _, cursor = monitor_tick([FRAUD], instance, cursor)
    assert _retrains(requests) == [], "the same failure is not acted on twice"

    # The retrain failed (no model materialised); the next failing evaluation asks again.
    _check_result(instance, asset, check, False, error, T0 + timedelta(days=1))
    requests, _, cursor = monitor_tick([FRAUD], instance, cursor)
    (again,) = _retrains(requests)
    assert again.run_key != retrain.run_key


def test_no_second_retrain_while_one_is_running(trained):
    graph = trained(FRAUD)
    instance = graph.instance
    # A retrain run in progress.
    job = graph.defs.resolve_implicit_global_asset_job_def()
    instance.create_run_for_job(
        job,
        asset_selection=frozenset(TRAINING),
        status=dg.DagsterRunStatus.STARTED,
        tags={"headwater/retrain": FRAUD.name},
    )
    _check_result(
        instance, "drift", DRIFT_CHECK, False, dg.AssetCheckSeverity.ERROR, T0 + timedelta(hours=1)
    )
    requests, log, cursor = monitor_tick([FRAUD], instance, {})
    assert _retrains(requests) == []
    assert any("already running" in line for line in log)


def test_a_failure_older_than_the_latest_retrain_is_not_acted_on(trained):
    graph = trained(FRAUD)
    instance = graph.instance
    _check_result(
        instance, "drift", DRIFT_CHECK, False, dg.AssetCheckSeverity.ERROR, T0 + timedelta(hours=1)
    )
    graph.materialized([K["model"]], T0 + timedelta(hours=2))  # e.g. the weekly backstop
    requests, _, _ = monitor_tick([FRAUD], instance, {})
    assert _retrains(requests) == []


def test_performance_is_asked_for_once_the_days_labels_have_matured(trained):
    graph = trained(FRAUD)
    instance = graph.instance

    def scored(day: str, at: datetime) -> None:
        with frozen_clock(at):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(K["scores"], partition=day, metadata={"label_lag_days": 7})
            )

    scored("2025-03-01", T0)
    requests, _, cursor = monitor_tick([FRAUD], instance, {})
    assert requests == [], "labels of 03-01 mature on 03-08; the data reaches 03-02"

    for day in ("2025-03-02", "2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06"):
        scored(day, T0)
    requests, _, cursor = monitor_tick([FRAUD], instance, cursor)
    assert requests == [], "data up to 03-06 (ends 03-07): 03-01 matures 03-08"

    scored("2025-03-07", T0)
    requests, _, cursor = monitor_tick([FRAUD], instance, cursor)
    assert [(r.job_name, r.partition_key) for r in requests] == [
        (f"performance_{FRAUD.name}", "2025-03-01")
    ]
    requests, _, cursor = monitor_tick([FRAUD], instance, cursor)
    assert requests == [], "asked for once"


def test_a_backfilled_history_is_not_measured_by_the_sensor(trained):
    graph = trained(FRAUD)
    days = [(date(2024, 1, 1) + timedelta(days=i)).isoformat() for i in range(120)]
    with frozen_clock(T0):
        for day in days:  # a range run records one materialisation per day
            graph.instance.report_runless_asset_event(
                dg.AssetMaterialization(K["scores"], partition=day, metadata={"label_lag_days": 61})
            )
    requests, log, cursor = monitor_tick([FRAUD], graph.instance, {})
    # days maturing within the week before the newest data, at most
    # MAX_PERFORMANCE_RUNS_PER_TICK of them per tick; the older ones are a backfill's job
    data_end = date.fromisoformat(days[-1]) + timedelta(days=1)
    horizon = data_end - timedelta(days=PERFORMANCE_LOOKBACK_DAYS)
    recent = [d for d in days if horizon <= date.fromisoformat(d) + timedelta(days=61) <= data_end]
    assert [r.partition_key for r in requests] == recent[:MAX_PERFORMANCE_RUNS_PER_TICK]
    assert any("not measured" in line for line in log)
    requests, _, cursor = monitor_tick([FRAUD], graph.instance, cursor)
    assert [r.partition_key for r in requests] == recent[MAX_PERFORMANCE_RUNS_PER_TICK:]


def test_features_follow_a_mart_whose_early_days_never_existed(instance):
    """Daily partitions start on 2025-01-01; data that starts later leaves the early days
    missing forever, which must not hold the feature sets back; a mart with no data at all
    must."""
    from headwater_core.partitions import partitions_def
    from ml_assets.automation.conditions import features_condition

    mart = dg.AssetSpec(dg.AssetKey(["marts", "fct"]), partitions_def=partitions_def())
    dim = dg.AssetSpec(dg.AssetKey(["marts", "dim"]))

    @dg.asset(
        key=["features", "f"], deps=[mart.key, dim.key], automation_condition=features_condition()
    )
    def feature():
        """A feature set."""

    defs = dg.Definitions(assets=[mart, dim, feature])
    with frozen_clock(T0):
        cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
        # A first start: the snapshot dimension lands before any day of the fact.
        instance.report_runless_asset_event(dg.AssetMaterialization(dim.key))
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        assert result.get_num_requested(feature.key) == 0, "the fact has no data yet"
        instance.report_runless_asset_event(
            dg.AssetMaterialization(mart.key, partition="2025-03-03")
        )
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=result.cursor
        )
    assert result.get_num_requested(feature.key) == 1


@pytest.mark.parametrize("gate_passed", [False, True])
def test_the_champion_follows_an_evaluation_only_when_its_gate_passed(trained, gate_passed):
    from headwater_core.names import GATE_CHECK

    graph = trained(FRAUD)
    # A retrain run by the monitor's job: the champion step ran and, when the gate refused,
    # rightly materialised nothing.
    at = T0 + timedelta(hours=1)
    graph.materialized([K["training_set"], K["model"], K["evaluation"]], at)
    severity = dg.AssetCheckSeverity.WARN
    _check_result(graph.instance, "evaluation", GATE_CHECK, gate_passed, severity, at)
    asked = graph.tick(at + timedelta(minutes=5))
    assert asked == ({K["champion"]} if gate_passed else set())
