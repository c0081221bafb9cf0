"""The loop, played day by day through the real automation in one process.

Each simulated day: the generator's files for the day land in the landing folder; at 00:15 the
next morning (Dagster's clock frozen there) the landing sensor is evaluated, the freshness
daemon's own code re-evaluates freshness policies, declarative automation is evaluated
(`evaluate_automation_conditions`, the daemon's logic) and the monitor sensor ticks; every run
they ask for executes in process against a real instance in `<home>/dagster_home`, with the real
warehouse, MLflow store and reports under `<home>`. Ticks repeat until nobody asks for more.

Before day 0 the history is materialised in one range run and the first champion trained, as a
user's first backfill would. The world's chargebacks arrive within `maturity_days - 1` days (and
dbt reads HEADWATER_LABEL_MATURITY_DAYS), so labels mature inside a month-long simulation.

Uses two Dagster internals, both the daemon's own code: `FreshnessDaemon._evaluate_asset` and
`AssetGraphView.for_test`; and `freeze_time` from dagster's test utilities. The lockfile pins
the Dagster version they come from.
"""

import asyncio
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg

TICK_TIME = time(0, 15)
MAX_TICKS_PER_DAY = 4
# The runs' console output would bury the table; everything is still in the instance's event log.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class SimulationConfig:
    days: int = 30
    history_days: int = 35
    transactions_per_day: int = 3000
    drift: bool = True
    drift_on_day: int = 5
    """The simulated day (0-based) the generator's crypto_wave scenario starts."""
    maturity_days: int = 7
    seed: int = 42
    start_date: date = date(2025, 1, 1)
    model: str = "fraud_classifier"

    @property
    def first_day(self) -> date:
        return self.start_date + timedelta(days=self.history_days)

    @property
    def drift_starts(self) -> date | None:
        return self.first_day + timedelta(days=self.drift_on_day) if self.drift else None


@dataclass
class DayReport:
    day: str
    drift_share: float | None = None
    drift_check: str = ""
    realised: str = ""
    champion: str = ""
    actions: list[str] = field(default_factory=list)


@dataclass
class SimulationResult:
    config: dict
    days: list[DayReport]
    comparison: dict
    seconds: float


# -- set-up ------------------------------------------------------------------------------------


def _prepare(home: Path, config: SimulationConfig) -> Path:
    """A fresh state folder whose environment every resource resolves at run time."""
    from headwater.cli import configure_environment

    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    for variable in ("HEADWATER_DUCKDB_PATH", "HEADWATER_LANDING_DIR", "DAGSTER_HOME"):
        os.environ.pop(variable, None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["HEADWATER_LABEL_MATURITY_DAYS"] = str(config.maturity_days)
    configure_environment(home)
    return home


def _generate(home: Path, config: SimulationConfig) -> Path:
    """Every day's files, written once into `<home>/incoming`; they land day by day."""
    from fraud_demo.generator import DriftScenario, GeneratorConfig, generate

    total_days = config.history_days + config.days
    incoming = home / "incoming"
    generate(
        GeneratorConfig(
            seed=config.seed,
            start_date=config.start_date,
            days=total_days,
            transactions=config.transactions_per_day * total_days,
            drift=(
                DriftScenario("crypto_wave", config.drift_starts) if config.drift_starts else None
            ),
            max_report_delay_days=config.maturity_days - 1,
        ),
        incoming,
        progress=False,
    )
    return incoming


def _land(incoming: Path, landing: Path, up_to: date) -> list[str]:
    """Move every incoming file dated up to `up_to` (and the snapshots) into the landing folder."""
    moved = []
    for path in sorted(incoming.rglob("*.*")):
        stem_date = path.stem.rsplit("_", 1)[-1]
        snapshot = path.parent.name in ("customers", "merchants")
        if snapshot or date.fromisoformat(stem_date) <= up_to:
            target = landing / path.relative_to(incoming)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            moved.append(path.name)
    return moved


# -- executing what the automation asks for ----------------------------------------------------


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
                key.path[0] in ("models", "scores", "monitoring") and key.path[1] in others
                for key in a.keys
            )
        ]
        self.resources = {**data_defs.resources, **ml_defs.resources}
        model_jobs = [j for j in ml_defs.jobs if j.name.endswith(f"_{model}")]
        self.defs = dg.Definitions(assets=self.assets, jobs=model_jobs, resources=self.resources)
        # Runs go through the same jobs as under the daemon: the asset job with an asset
        # selection (what declarative automation and the landing sensor launch), or a named job
        # (the monitor sensor's), so runs carry the selection and tags the conditions read.
        self.asset_job = self.defs.resolve_implicit_global_asset_job_def()
        self.instance = dg.DagsterInstance.get()
        self.specs = [s for s in load_specs() if s.name == model]
        self.landing_sensor = data_defs.get_sensor_def("landing_sensor")
        self.jobs = {j.name: j for j in ml_defs.jobs}
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
            tags={"headwater/trigger": "simulation", **(tags or {})},
            run_config=QUIET,
            raise_on_error=False,
        )
        self.runs.append(result)
        return result

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

    # freshness daemon
    def evaluate_freshness(self) -> None:
        from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
        from dagster._daemon.freshness import FreshnessDaemon

        view = AssetGraphView.for_test(self.defs, self.instance)
        daemon = FreshnessDaemon()
        nodes = [n for n in view.asset_graph.asset_nodes if n.freshness_policy is not None]

        async def evaluate_all():
            for node in nodes:
                await daemon._evaluate_asset(view, node)  # noqa: SLF001 - the daemon's own code

        asyncio.run(evaluate_all())

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
                reasons[node.key] = _why(node)
        done = []
        # Unpartitioned first: features and a retrain come before the day's scores and drift
        # (the daemon's backfill orders them the same way).
        for partition in sorted(by_partition, key=lambda p: (p is not None, p or "")):
            keys = by_partition[partition]
            outcome = self.execute(keys, partition)
            status = "" if outcome.success else " FAILED"
            done.append(f"automation: {_describe(keys, reasons, partition)}{status}")
            done.extend(_gate_outcome(outcome))
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
            reason = request.tags.get("headwater/retrain_reason") or request.tags.get(
                "headwater/reason", ""
            )
            what = request.job_name.replace("_", " ", 1)
            day = f" {request.partition_key}" if request.partition_key else ""
            done.append(f"monitor: {what}{day}{status} ({reason})")
            done.extend(_gate_outcome(outcome))
        return done


def _role(key: dg.AssetKey) -> str:
    """What an asset is in the loop: features, retrain, scores, drift or performance."""
    if key.path[0] == "models":
        return "retrain"
    if key.path[0] == "monitoring":
        return key.path[-1]
    return key.path[0]


def _describe(keys, reasons: dict, partition: str | None) -> str:
    """'features (marts updated); retrain (weekly backstop)' for one run's assets."""
    parts = []
    for role in ("features", "retrain", "scores", "drift", "performance"):
        of_role = [k for k in keys if _role(k) == role]
        if not of_role:
            continue
        first = min(of_role, key=lambda k: (k.path[-1] != "training_set", str(k)))
        why = reasons.get(first, "")
        day = f" {partition}" if partition and role in ("scores", "drift", "performance") else ""
        parts.append(f"{role}{day}" + (f" ({why})" if why else ""))
    return "; ".join(parts)


# Labels of the sub-conditions worth naming when saying why automation asked for something.
_REASONS = (
    "no model yet",
    "model failed its freshness policy",
    "weekly backstop",
    "features updated",
    "a champion for unscored days",
    "scores updated",
    "any_deps_updated",
)
_PLAIN = {"any_deps_updated": "marts updated"}


def _why(node) -> str:
    """The named sub-conditions that were true, from the evaluation tree (what the UI shows)."""
    found: list[str] = []

    def walk(n) -> None:
        label = n.condition.get_label() or ""
        if n.true_subset.size and any(label.startswith(r) for r in _REASONS):
            found.append(label)
            return
        for child in n.child_results:
            walk(child)

    walk(node)
    return ", ".join(dict.fromkeys(_PLAIN.get(f, f) for f in found))


def _gate_outcome(result: dg.ExecuteInProcessResult) -> list[str]:
    """What a run's promotion gate decided: the evaluation's check, and a champion
    materialisation only if the alias moved."""
    lines = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name == "challenger_beats_champion":
            verdict = "passed" if evaluation.passed else "refused"
            lines.append(f"gate: {verdict}: {evaluation.description}")
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.path[0] == "models" and mat.asset_key.path[-1] == "champion":
            meta = {k: v.value for k, v in mat.metadata.items()}
            lines.append(
                f"gate: promoted v{meta['champion_version']} "
                f"(was v{meta['previous_champion_version']})"
            )
    return lines


# -- reading the day's outcome -----------------------------------------------------------------


def _latest_partition_metadata(instance, key: dg.AssetKey, partition: str) -> dict | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _drift_check(instance, key: dg.AssetKey) -> str:
    from headwater_core.names import DRIFT_CHECK

    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(key, DRIFT_CHECK), limit=1
    )
    if not history or history[0].event is None:
        return ""
    evaluation = history[0].event.asset_check_evaluation
    if evaluation.passed:
        return "ok"
    return evaluation.severity.value.lower()


def _report_day(loop: Loop, spec, day: str, actions: list[str]) -> DayReport:
    from ml_assets.automation.keys import keys_of
    from ml_assets.models.tracking import CHAMPION, MlflowTracking

    k = keys_of(spec.name)
    drift = _latest_partition_metadata(loop.instance, k["drift"], day) or {}
    drift_share = drift.get("drifted_importance_share")
    metric = spec.monitoring.performance.metric
    realised = []
    for line in actions:
        if line.startswith("monitor: performance"):
            measured_day = line.split()[3]
            meta = _latest_partition_metadata(loop.instance, k["performance"], measured_day)
            if meta and metric in meta:
                version = meta["model_version"]
                realised.append(f"{meta[metric]:.3f} ({measured_day[5:]}, v{version})")
    champion = MlflowTracking().version_by_alias(spec.registered_model_name, CHAMPION)
    return DayReport(
        day=day,
        drift_share=drift_share,
        drift_check=_drift_check(loop.instance, k["drift"]) if drift else "",
        realised=", ".join(realised),
        champion=f"v{champion.version}" if champion else "none",
        actions=actions,
    )


def _compare(loop: Loop, spec, since: date, first_version: str = "1") -> dict:
    """What retraining bought: on the matured days since `since` that a retrained champion
    scored, the realised metrics of the scores as served against the first champion's scores of
    the same rows."""
    from ml_assets.models.evaluate import metrics_for
    from ml_assets.models.tracking import MlflowTracking, load_booster
    from ml_assets.models.train import predict, to_frame

    label = spec.label
    keys = ", ".join(spec.keys)
    with loop.resources["warehouse"].connect(read_only=True) as con:
        rows = con.sql(
            f"select f.*, s.score as _served, s.model_version as _version, "
            f"cast(l.{label.column} as double) as _label from scores.{spec.name} s "
            f"join {spec.feature_set} f using ({keys}) join {label.table} l using ({keys}) "
            f"where s.model_version <> $1 and cast(s.event_time as date) >= $2 "
            f"and l.{label.matures_at} <= (select max({spec.event_time}) from {spec.feature_set})",
            params=[first_version, since.isoformat()],
        ).to_arrow_table()
    if rows.num_rows == 0:
        return {"note": "no day scored by a retrained champion has matured labels yet"}
    y = rows.column("_label").to_numpy()
    old = load_booster(MlflowTracking(), spec.registered_model_name, first_version)
    days = sorted({str(d) for d in rows.column(spec.score_date).to_pylist()})
    versions = sorted({int(v) for v in rows.column("_version").to_pylist()})
    return {
        "days": f"{days[0]}..{days[-1]}",
        "rows": rows.num_rows,
        "positives": int(y.sum()),
        "served_by": [f"v{v}" for v in versions],
        "served (retrained champions)": metrics_for(spec, y, rows.column("_served").to_numpy()),
        f"first champion v{first_version} on the same rows": metrics_for(
            spec, y, predict(old, to_frame(rows, spec))
        ),
    }


# -- the loop ----------------------------------------------------------------------------------


def simulate(
    home: Path, config: SimulationConfig, echo: Callable[[str], None] = print
) -> SimulationResult:
    import time as clock

    from dagster._core.test_utils import freeze_time

    started = clock.perf_counter()
    _prepare(home, config)
    incoming = _generate(home, config)
    landing = Path(os.environ["HEADWATER_LANDING_DIR"])
    loop = Loop(config.model)
    (spec,) = loop.specs

    # The history, as a first backfill: raw to scores in one range run, then the first champion.
    history_end = config.first_day - timedelta(days=1)
    _land(incoming, landing, history_end)
    # Just after midnight: the last history day is complete, so its partition exists.
    bootstrap = datetime.combine(config.first_day, time(0, 5), tzinfo=UTC)
    with freeze_time(bootstrap):
        from headwater.headless import materialize_range

        first = materialize_range(
            config.start_date.isoformat(),
            history_end.isoformat(),
            instance=loop.instance,
            selection=dg.AssetSelection.assets(*(k for a in loop.assets for k in a.keys))
            - dg.AssetSelection.groups("monitoring"),
            run_config=QUIET,
        )
        if not first.success:
            raise RuntimeError(f"the history backfill failed: {first.failure}")
        # The sensors and automation start from here: what the backfill did is not news (its
        # matured days trained the first champion: their performance would not be realised).
        from ml_assets.automation.monitor import monitor_tick

        loop.tick_landing()
        _, _, loop.monitor_cursor = monitor_tick(loop.specs, loop.instance, {})
        loop.automation_cursor = dg.evaluate_automation_conditions(
            defs=loop.defs, instance=loop.instance, evaluation_time=bootstrap
        ).cursor
    echo(
        f"history {config.start_date}..{history_end} materialised in "
        f"{clock.perf_counter() - started:.0f} s; champion v1 trained"
    )

    echo(HEADER)
    reports: list[DayReport] = []
    for index in range(config.days):
        day = config.first_day + timedelta(days=index)
        _land(incoming, landing, day)
        now = datetime.combine(day + timedelta(days=1), TICK_TIME, tzinfo=UTC)
        actions: list[str] = []
        for tick in range(MAX_TICKS_PER_DAY):
            runs_before = len(loop.runs)
            at = now + timedelta(minutes=5 * tick)
            with freeze_time(at):
                actions += loop.tick_landing()
                loop.evaluate_freshness()
                actions += loop.tick_automation(at)
                actions += loop.tick_monitor()
            if len(loop.runs) == runs_before:
                break
        report = _report_day(loop, spec, day.isoformat(), actions)
        reports.append(report)
        echo(_row(report))

    comparison = _compare(loop, spec, config.drift_starts or config.first_day) if reports else {}
    return SimulationResult(
        config={k: str(v) for k, v in asdict(config).items()},
        days=reports,
        comparison=comparison,
        seconds=clock.perf_counter() - started,
    )


# -- printing ----------------------------------------------------------------------------------

HEADER = (
    "| day | drifted importance | drift check | realised ROC-AUC (day, version) | champion | "
    "what the automation did, and why |\n|---|---:|---|---|---|---|"
)


def _row(report: DayReport) -> str:
    share = f"{report.drift_share:.0%}" if report.drift_share is not None else ""
    interesting = [a for a in report.actions if not a.startswith("landing:")]
    return (
        f"| {report.day} | {share} | {report.drift_check} | {report.realised} | "
        f"{report.champion} | {'<br>'.join(interesting)} |"
    )


def render(result: SimulationResult) -> str:
    lines = [HEADER, *(_row(r) for r in result.days)]
    if result.comparison:
        lines.append("")
        lines.append("What retraining bought (matured days served by a retrained champion):")
        for key, value in result.comparison.items():
            if isinstance(value, dict):
                value = ", ".join(f"{m} {v:.3f}" for m, v in value.items())
            lines.append(f"- {key}: {value}")
    lines.append(f"\n{len(result.days)} days in {result.seconds:.0f} s")
    return "\n".join(lines)


def to_json(result: SimulationResult) -> str:
    return json.dumps(asdict(result), indent=2, default=str)


def add_arguments(parser) -> None:
    """`headwater simulate`'s options; defaults are SimulationConfig's."""
    defaults = SimulationConfig()
    parser.add_argument("--home", type=Path, default=None, help="state folder (recreated)")
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--history-days", type=int, default=defaults.history_days)
    parser.add_argument("--transactions-per-day", type=int, default=defaults.transactions_per_day)
    parser.add_argument("--no-drift", action="store_true", help="play the world without drift")
    parser.add_argument("--drift-on-day", type=int, default=defaults.drift_on_day)
    parser.add_argument("--maturity-days", type=int, default=defaults.maturity_days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")


def run_from_arguments(args) -> int:
    from headwater_core.config import state_dir

    config = SimulationConfig(
        days=args.days,
        history_days=args.history_days,
        transactions_per_day=args.transactions_per_day,
        drift=not args.no_drift,
        drift_on_day=args.drift_on_day,
        maturity_days=args.maturity_days,
        seed=args.seed,
        model=args.model,
    )
    home = (args.home or state_dir() / "simulation").resolve()
    print(f"headwater simulate: {config}\nstate in {home}\n", flush=True)
    result = simulate(home, config, echo=lambda line: print(line, flush=True))
    print(f"\n{render(result)}")
    if args.json:
        args.json.write_text(to_json(result))
    return 0
