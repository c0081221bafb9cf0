"""The benchmark's parts, each run as `python -m bench.parts <part> --config JSON --out FILE`.

The harness (`bench/run.py`) starts every part in a fresh subprocess whose environment points
HEADWATER_HOME at a fresh folder (and nothing else at an old state), so no instance, warehouse,
MLflow store or imported module carries over from one part to the next. A part writes what it
measured as JSON to `--out`; the harness adds the wall time and peak memory of its process tree.

    generate     the demo world's landing files for the window (shared read-only by full, floor)
    full         the whole graph for the window in one headless run, then drift of each model's
                 newest scored day: wall time and per-step times from the event log
    floor        the same work in one plain process, no Dagster (bench/floor.py)
    incremental  the history (90 days) materialised, one more day landed by the demo feed, and
                 that day through the graph as the daily loop runs it
    concurrent   two `full` parts at once, each with its own state (bench/concurrent.py)
    startup      code location loads cold and warm, `dagster definitions validate`, and the time
                 until the first README command's UI answers (bench/startup.py)
    serve        single-row latency of `headwater serve` at a steady rate, against the raw
                 Booster and `mlflow models serve` on the same model (bench/serve.py)
    tick         one evaluation of each sensor and of the automation conditions against the
                 state the incremental part left (or a history of its own)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from headwater_core.names import LANDING_SENSOR, TRIGGER_TAG

# The runs' console output would bury everything; the event log in the instance keeps it all.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# -- configuration shared with the harness -----------------------------------------------------


def generator_config(config: dict, start: str, days: int):
    """The generator's config for `days` days from `start` at the benchmark's daily volume."""
    from fraud_demo.generator import GeneratorConfig

    per_day = max(1, round(config["transactions"] / config["days"]))
    extra = {}
    if config.get("label_maturity_days"):
        # A faster world: every chargeback arrives before its label is declared mature.
        extra["max_report_delay_days"] = config["label_maturity_days"] - 1
    return GeneratorConfig(
        seed=config["seed"],
        start_date=date.fromisoformat(start),
        days=days,
        transactions=per_day * days,
        **extra,
    )


def _day(value: str, offset: int) -> str:
    return (date.fromisoformat(value) + timedelta(days=offset)).isoformat()


# -- reading a run back from the event log -----------------------------------------------------


def step_breakdown(logs) -> list[dict]:
    """Every step of a run: its duration (STEP_START to STEP_SUCCESS/FAILURE, as stamped in the
    instance's event log) and the assets it materialised, in the order the steps started."""
    started: dict[str, float] = {}
    steps: dict[str, dict] = {}
    for entry in logs:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        step = steps.setdefault(event.step_key, {"step": event.step_key, "assets": []})
        kind = event.event_type_value
        if kind == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            step["seconds"] = entry.timestamp - started[event.step_key]
            step["status"] = "success" if kind == "STEP_SUCCESS" else "failure"
        elif kind == "ASSET_MATERIALIZATION":
            key = event.event_specific_data.materialization.asset_key.to_user_string()
            if key not in step["assets"]:
                step["assets"].append(key)
    return [s for s in steps.values() if "seconds" in s]


def before_steps(logs) -> dict:
    """What a run wrote to the event log before its first step started, and how long it took:
    an in-process run first records a planned materialisation per asset and partition."""
    first = logs[0].timestamp if logs else 0.0
    step_start = next(
        (
            e.timestamp
            for e in logs
            if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
        ),
        first,
    )
    planned = sum(
        1
        for e in logs
        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION_PLANNED"
    )
    return {
        "before_first_step_seconds": step_start - first,
        "planned_events": planned,
        "events": len(logs),
    }


def _first_failure(result) -> str:
    """The first failed step's message (headless results carry it already)."""
    if getattr(result, "failure", ""):
        return result.failure
    for event in getattr(result, "all_events", []):
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            return f"{event.step_key}: {error.message.strip() if error else 'failed'}"
    return "see the run's event log"


def _timed_run(label: str, run) -> dict:
    """Time `run()` (a callable returning an ExecuteInProcessResult-like object with run_id and
    success) and read its steps back; a failed run stops the part with its first failure."""
    import dagster as dg

    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"{label} failed: {_first_failure(result)}")
    logs = dg.DagsterInstance.get().all_logs(result.run_id)
    steps = step_breakdown(logs)
    return {
        "label": label,
        "run_id": result.run_id,
        "seconds": seconds,
        "steps": steps,
        "outside_steps_seconds": seconds - sum(s["seconds"] for s in steps),
        **before_steps(logs),
    }


# -- the platform's runs -----------------------------------------------------------------------


def _platform():
    """Both code locations, imported (and their Definitions built) once per part."""
    from data_platform.definitions import defs as data_defs
    from headwater.headless import all_materializable_assets
    from ml_assets.definitions import defs as ml_defs

    return all_materializable_assets(), {**data_defs.resources, **ml_defs.resources}


def range_run(label: str, start: str, end: str, selection=None) -> dict:
    """`headwater materialize` for start..end (everything but monitoring unless `selection`)."""
    import dagster as dg

    from headwater.headless import materialize_range

    return _timed_run(
        label,
        lambda: materialize_range(
            start, end, instance=dg.DagsterInstance.get(), selection=selection, run_config=QUIET
        ),
    )


def newest_scored_days() -> dict[str, str]:
    """Each model's newest day with scores in the warehouse."""
    from headwater_core.resources import Warehouse
    from ml_assets.models.spec import load_specs

    days = {}
    with Warehouse().connect(read_only=True) as con:
        for spec in load_specs():
            ((day,),) = con.sql(
                f"select cast(max(event_time) as date) from scores.{spec.name}"
            ).fetchall()
            if day is not None:
                days[spec.name] = day.isoformat()
    return days


def drift_runs(days: dict[str, str]) -> list[dict]:
    """The drift of each model for its day, one run per day for every model scored that day:
    as automation asks (its tick puts the partitions of one day requested together in one run)."""
    import dagster as dg

    from headwater_core.compute import frozen_heap

    assets, resources = _platform()
    by_day: dict[str, list[str]] = {}
    for model, day in sorted(days.items()):
        by_day.setdefault(day, []).append(model)
    runs = []
    for day, models in sorted(by_day.items()):
        keys = [dg.AssetKey(["monitoring", model, "drift"]) for model in models]

        def run(keys=keys, day=day):
            # As the headless runs (`headwater monitor` too) and the floor: what the part has
            # loaded, a whole history run's objects included, stays out of the run's full
            # garbage collections. A run worker of automation starts with none of it.
            with frozen_heap():
                return dg.materialize(
                    assets,
                    instance=dg.DagsterInstance.get(),
                    resources=resources,
                    selection=dg.AssetSelection.assets(*keys),
                    partition_key=day,
                    tags={TRIGGER_TAG: "bench"},
                    run_config=QUIET,
                    raise_on_error=False,
                )

        runs.append(_timed_run(f"drift {', '.join(models)} {day}", run))
    return runs


def warehouse_counts() -> dict[str, int]:
    """Rows in the tables both the platform and the floor fill, to compare their work."""
    from headwater_core.resources import Warehouse
    from ml_assets.models.spec import load_specs

    tables = ["raw.transactions", "marts.fct_transactions", "features.transaction_features"]
    tables += [f"scores.{spec.name}" for spec in load_specs()]
    with Warehouse().connect(read_only=True) as con:
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}


def online_rows() -> dict[str, int]:
    """History rows each online store's newest write holds (its asset's `history_rows`)."""
    import dagster as dg

    from headwater_core.names import online_key
    from ml_assets.online.plan import HISTORY

    instance, rows = dg.DagsterInstance.get(), {}
    for feature_set in HISTORY:
        event = instance.get_latest_materialization_event(dg.AssetKey(online_key(feature_set)))
        if event is not None and event.asset_materialization is not None:
            rows[feature_set] = event.asset_materialization.metadata["history_rows"].value
    return rows


def _configure() -> None:
    # The harness set HEADWATER_HOME (and the shared landing folder); this adds the instance.
    from headwater.cli import configure_environment

    configure_environment()


def _imports() -> float:
    started = time.perf_counter()
    _platform()
    return time.perf_counter() - started


# -- the parts ---------------------------------------------------------------------------------


def part_generate(config: dict) -> dict:
    from fraud_demo.generator import generate

    generated = generator_config(config, config["start"], config["days"])
    summary = generate(generated, Path(os.environ["HEADWATER_LANDING_DIR"]), progress=False)
    return {
        "transactions": summary.transactions,
        "days": config["days"],
        "seconds": summary.elapsed_seconds,
    }


def part_full(config: dict) -> dict:
    _configure()
    imports = _imports()
    run = range_run("materialize", config["start"], config["end"])
    drift = drift_runs(newest_scored_days())
    return {
        "import_seconds": imports,
        "materialize_seconds": run["seconds"],
        "drift_seconds": sum(r["seconds"] for r in drift),
        "compute_seconds": run["seconds"] + sum(r["seconds"] for r in drift),
        "runs": [run, *drift],
        "rows": warehouse_counts(),
        "online_rows": online_rows(),
    }


def part_floor(config: dict) -> dict:
    from bench.floor import run_floor

    return run_floor(
        landing=Path(os.environ["HEADWATER_LANDING_DIR"]),
        home=Path(os.environ["HEADWATER_HOME"]),
        start=config["start"],
        end=config["end"],
    )


def _history(config: dict, new_days: int = 1) -> dict:
    """The incremental part's starting point: `history_days` landed as the demo is (with a
    record the feed extends), materialised, and the newest day's drift measured. It ends the
    day before the first of the `new_days` that end on the window's last day."""
    from fraud_demo.feed import start_demo

    end = _day(config["end"], -new_days)
    start = _day(end, 1 - config["history_days"])
    landing = Path(os.environ["HEADWATER_LANDING_DIR"])
    start_demo(generator_config(config, start, config["history_days"]), landing, progress=False)
    imports = _imports()
    run = range_run("history", start, end)
    drift = drift_runs(newest_scored_days())
    return {
        "start": start,
        "end": end,
        "import_seconds": imports,
        "seconds": run["seconds"] + sum(r["seconds"] for r in drift),
        "runs": [run, *drift],
    }


def new_day(day: str, settle: float) -> dict:
    """One new day as the daily loop runs it: its files landed (the demo's feed) and settled,
    then one run of its raw files and facts, the dimensions (a new CRM and acquirer snapshot
    came with it), the features, the online store and the day's scores, then its drift. No
    retraining: that is weekly, or when a check fails. `settle`: the raw contracts' longest
    settle interval (`_settle_seconds`)."""
    import dagster as dg

    from fraud_demo.feed import feed_demo

    landing = Path(os.environ["HEADWATER_LANDING_DIR"])
    started = time.perf_counter()
    fed = feed_demo(landing, date.fromisoformat(day))
    landed = time.perf_counter() - started
    # The landing sensor launches a run only for files unchanged for their settle interval, so
    # a sensor's run never waits on the raw assets' own settle check: neither does this one.
    time.sleep(settle_wait(landing, settle))
    selection = dg.AssetSelection.all() - dg.AssetSelection.groups(
        "monitoring", "models", "serving"
    )
    run = range_run(f"new day {day}", day, day, selection=selection)
    drift = drift_runs({m: day for m in newest_scored_days()})
    return {
        "day": day,
        "days_landed": fed.days_landed if fed else 0,
        "land_seconds": landed,
        "settle_seconds": settle,
        "seconds": run["seconds"] + sum(r["seconds"] for r in drift),
        "runs": [run, *drift],
    }


def settle_wait(landing: Path, settle: float, now: float | None = None) -> float:
    """Seconds until every file under `landing` has been unchanged for `settle` seconds, as the
    landing sensor waits before it launches a run (its rule: `data_platform.raw.landing.settling`,
    a file modified less than `settle` seconds ago). Counted from the newest file's modification
    time, not from the start of the feed: at 10M transactions the demo's feed writes for
    3.5 s, and a wait counted from its start left the last file (the chargebacks) 1.5 s old, so
    the raw step slept 3.3 s of the day in the contract's own settle check."""
    newest = max((f.stat().st_mtime for f in landing.rglob("*") if f.is_file()), default=None)
    if newest is None:
        return 0.0
    # A margin, so that the raw step finds every file strictly older than the interval.
    return max(0.0, settle - ((time.time() if now is None else now) - newest) + 0.05)


def part_incremental(config: dict) -> dict:
    _configure()
    count = config.get("new_days", 1)
    history = _history(config, count)
    # Consecutive days, each on the state the one before left: one day's time moves by a
    # second from run to run on this machine, so the figure is the median of several.
    settle = _settle_seconds()
    days = [new_day(_day(config["end"], k + 1 - count), settle) for k in range(count)]
    day_seconds = statistics.median(d["seconds"] for d in days)
    return {
        "history": history,
        "history_days": config["history_days"],
        "days": days,
        "day_seconds": day_seconds,
        "day_share_of_full": day_seconds / history["seconds"],
        "runs": [r for d in days for r in d["runs"]],
        "rows": warehouse_counts(),
    }


def _settle_seconds() -> float:
    """The longest settle interval of the raw contracts (a landed file is loaded once it is
    that old)."""
    from data_platform.raw.contract import load_contracts
    from headwater_core.config import dbt_project_dir

    return max(c.settle_seconds for c in load_contracts(dbt_project_dir()).values())


def part_tick(config: dict) -> dict:
    import dagster as dg

    from data_platform.definitions import defs as data_defs
    from headwater.headless import all_materializable_assets
    from ml_assets.automation.monitor import monitor_tick
    from ml_assets.definitions import defs as ml_defs
    from ml_assets.models.spec import load_specs

    _configure()
    own_history = None
    if not config.get("state_from_incremental"):
        own_history = _history(config)
    resources = {**data_defs.resources, **ml_defs.resources}
    defs = dg.Definitions(
        assets=all_materializable_assets(), jobs=ml_defs.jobs, resources=resources
    )
    instance = dg.DagsterInstance.get()
    specs = load_specs()
    landing_sensor = data_defs.get_sensor_def(LANDING_SENSOR)
    figures: dict[str, dict] = {}

    def landing(cursor):
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"landing": resources["landing"]}
        )
        outcome = landing_sensor(context)
        return context.cursor, len(outcome) if isinstance(outcome, list) else 0

    def automation(cursor):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        return result.cursor, result.total_requested

    def monitor(cursor):
        requests, _, cursor = monitor_tick(specs, instance, cursor or {})
        return cursor, len(requests)

    # Twice each: the first evaluation starts from no cursor (a daemon's first tick, or after
    # its cursor was reset); the second is the steady state, every tick of a running daemon.
    for name, evaluate in (
        ("landing_sensor", landing),
        ("automation", automation),
        ("model_monitor", monitor),
    ):
        cursor = None
        for which in ("first", "steady"):
            started = time.perf_counter()
            cursor, requested = evaluate(cursor)
            figures.setdefault(name, {})[which] = {
                "seconds": time.perf_counter() - started,
                "requested": requested,
            }
    return {
        "ticks": figures,
        "steady_total_seconds": sum(f["steady"]["seconds"] for f in figures.values()),
        "own_history": own_history,
    }


def part_startup(config: dict) -> dict:
    from bench.startup import measure_startup

    return measure_startup(config)


def part_serve(config: dict) -> dict:
    from bench.serve import measure_serve

    _configure()
    return measure_serve(config)


def part_concurrent(config: dict) -> dict:
    from bench.concurrent import part_concurrent as concurrent

    return concurrent(config)


PARTS = {
    "generate": part_generate,
    "serve": part_serve,
    "concurrent": part_concurrent,
    "full": part_full,
    "floor": part_floor,
    "incremental": part_incremental,
    "startup": part_startup,
    "tick": part_tick,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parts")
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("--config", required=True, help="the harness's config, as JSON")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    result = PARTS[args.part](json.loads(args.config))
    args.out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
