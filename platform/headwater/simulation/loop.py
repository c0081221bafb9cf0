"""Both code locations' assets on one instance, with the sensors and declarative automation
ticked by hand and every run they ask for executed in process."""

from collections import defaultdict
from datetime import datetime

import dagster as dg

from headwater.dagster_internals import evaluate_freshness
from headwater.simulation import explain
from headwater_core import names
from headwater_core.names import LANDING_SENSOR, PERFORMANCE_REASON_TAG, TRIGGER_TAG

# The runs' console output would bury the table; everything is still in the instance's event log.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Tags of the runs the simulation executes, and the reason a performance run carries.


class Loop:
    """The two code locations' assets and sensors, one instance, and the cursors between ticks."""

    def __init__(self, model: str) -> None:
        from data_platform.definitions import defs as data_defs
        from headwater.headless import all_materializable_assets
        from ml_assets.definitions import defs as ml_defs
        from ml_assets.models.spec import load_specs

        # One model's loop: the other specs' assets are left out (a 30-day label, say, would
        # not mature inside the simulation and its training would fail every day).
        others = {s.name for s in load_specs()} - {model}
        self.assets = [
            a
            for a in all_materializable_assets()
            if not any(
                key.path[0] in (names.MODELS, names.SCORES, names.MONITORING)
                and key.path[1] in others
                for key in a.keys
            )
        ]
        self.resources = {**data_defs.resources, **ml_defs.resources}
        model_jobs = [
            j
            for j in ml_defs.jobs
            if j.name in (names.retrain_job(model), names.performance_job(model))
        ]
        self.defs = dg.Definitions(assets=self.assets, jobs=model_jobs, resources=self.resources)
        # Runs go through the same jobs as under the daemon: the asset job with an asset
        # selection (what declarative automation and the landing sensor launch), or a named job
        # (the monitor sensor's), so runs carry the selection and tags the conditions read.
        self.asset_job = self.defs.resolve_implicit_global_asset_job_def()
        self.instance = dg.DagsterInstance.get()
        self.specs = [s for s in load_specs() if s.name == model]
        self.champion = dg.AssetKey(names.model_keys(model)["champion"])
        self.landing_sensor = data_defs.get_sensor_def(LANDING_SENSOR)
        self.landing_cursor: str | None = None
        self.automation_cursor = None
        self.monitor_cursor: dict = {}
        self.runs: list[dg.ExecuteInProcessResult] = []

    def execute(
        self,
        keys,
        partition_key: str | None = None,
        tags: dict | None = None,
        job_name: str | None = None,
    ) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(job_name) if job_name else self.asset_job
        result = job.execute_in_process(
            instance=self.instance,
            asset_selection=None if job_name else list(keys),
            partition_key=partition_key,
            tags={TRIGGER_TAG: "simulation", **(tags or {})},
            run_config=QUIET,
            raise_on_error=False,
        )
        self.runs.append(result)
        return result

    def start_after(self, now: datetime) -> None:
        """Sensors and automation take what is there at `now` as seen: it is not news."""
        from ml_assets.automation.monitor import monitor_tick

        self.tick_landing()
        _, _, self.monitor_cursor = monitor_tick(self.specs, self.instance, {})
        self.automation_cursor = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, evaluation_time=now
        ).cursor

    def tick(self, now: datetime) -> list[str]:
        """One tick at `now` (Dagster's clock frozen there by the caller): the landing sensor,
        the freshness daemon, declarative automation and the monitor sensor, in that order."""
        actions = self.tick_landing()
        evaluate_freshness(self.defs, self.instance)
        actions += self.tick_automation(now)
        actions += self.tick_monitor()
        return actions

    # landing sensor
    def tick_landing(self) -> list[str]:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.landing_cursor,
            resources={"landing": self.resources["landing"]},
        )
        outcome = self.landing_sensor(context)
        self.landing_cursor = context.cursor
        requests = outcome if isinstance(outcome, list) else []
        done = []
        for request in requests:
            tags = dict(request.tags)
            result = self.execute(request.asset_selection, request.partition_key, tags)
            first = tags.get("dagster/asset_partition_range_start", request.partition_key or "")
            last = tags.get("dagster/asset_partition_range_end", first)
            window = f" {first}..{last}" if first else ""
            status = "" if result.success else " FAILED"
            done.append(f"landing: {len(request.asset_selection)} assets{window}{status}")
        return done

    # declarative automation
    def tick_automation(self, now: datetime) -> list[str]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs,
            instance=self.instance,
            evaluation_time=now,
            cursor=self.automation_cursor,
        )
        self.automation_cursor = result.cursor
        by_partition: dict[str | None, list[dg.AssetKey]] = defaultdict(list)
        reasons: dict[dg.AssetKey, str] = {}
        for node in result.results:
            for partition in result.get_requested_partitions(node.key):
                by_partition[partition].append(node.key)
                reasons[node.key] = explain.why(node)
        done = []
        # Unpartitioned first: features and a retrain come before the day's scores and drift
        # (the daemon's backfill orders them the same way).
        for partition in sorted(by_partition, key=lambda p: (p is not None, p or "")):
            keys = by_partition[partition]
            outcome = self.execute(keys, partition)
            status = "" if outcome.success else " FAILED"
            done.append(f"automation: {explain.describe(keys, reasons, partition)}{status}")
            done.extend(explain.gate_outcome(outcome, self.champion))
        return done

    # monitor sensor
    def tick_monitor(self) -> list[str]:
        from ml_assets.automation.monitor import monitor_tick

        requests, log, self.monitor_cursor = monitor_tick(
            self.specs, self.instance, self.monitor_cursor
        )
        done = [f"monitor: {line}" for line in log if "retrain (" not in line]
        for request in requests:
            outcome = self.execute(
                [], request.partition_key, dict(request.tags), job_name=request.job_name
            )
            status = "" if outcome.success else " FAILED"
            reason = request.tags.get(names.REASON_TAG) or request.tags.get(
                PERFORMANCE_REASON_TAG, ""
            )
            what = request.job_name.replace("_", " ", 1)
            day = f" {request.partition_key}" if request.partition_key else ""
            done.append(f"monitor: {what}{day}{status} ({reason})")
            done.extend(explain.gate_outcome(outcome, self.champion))
        return done
