"""The headless verbs of a working day, each one in-process Dagster run over a range of days:

    headwater materialize --start D --end D [--select SEL] [--no-train] [--generate]
                            a selection (Dagster's selection syntax; default: everything but
                            monitoring) for the range
    headwater score --start D --end D [--model NAME]
                            land, build the warehouse and features, score with the current
                            champion: no training, evaluation or promotion
    headwater monitor --start D --end D [--model NAME] [--only drift|performance]
                            drift and realised performance of every day of the range

The run is recorded in the instance; each prints a table per asset (headless.print_summary).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from headwater.environment import configure_environment
from headwater.errors import UserError, one_line

SELECT_HELP = (
    "assets to run, in Dagster's selection syntax: 'group:marts', 'key:raw/*+' (raw and "
    "everything downstream), 'key:models/fraud_classifier/*', 'kind:dbt and group:features'; "
    "default: everything but the monitoring group"
)


# The console says what each step did (INFO), not each of Dagster's events (DEBUG); the event log
# in the instance keeps them all.
PROGRESS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def parse_selection(text: str):
    """A Dagster asset selection from its string form; UserError if it is not one."""
    import dagster as dg
    from dagster._core.errors import DagsterError

    try:
        return dg.AssetSelection.from_string(text)
    except DagsterError as e:
        raise UserError(f"--select {text!r}: {one_line(e)}") from e


def _run(args: argparse.Namespace, selection, command: str) -> int:
    from headwater.headless import materialize_range, print_summary

    started = time.perf_counter()
    result = materialize_range(args.start, args.end, selection=selection, run_config=PROGRESS)
    print_summary(result, time.perf_counter() - started, command)
    return 0 if result.success else 1


def cmd_materialize(args: argparse.Namespace) -> int:
    from headwater.headless import EVERYTHING_BUT_MONITORING, TRAINING

    configure_environment()
    # No --select: the default (everything but monitoring), which may be empty in a new project.
    selection = parse_selection(args.select) if args.select else None
    if args.no_train:
        selection = (selection or EVERYTHING_BUT_MONITORING) - TRAINING
    if args.generate:
        from fraud_demo.generator import generate_if_absent
        from headwater.cli import _demo_config

        generate_if_absent(_demo_config(args), Path(os.environ["HEADWATER_LANDING_DIR"]))
    return _run(args, selection, "materialize")


def _specs(name: str | None) -> list:
    from ml_assets.models.spec import load_specs

    specs = load_specs()
    if name is None:
        return specs
    chosen = [s for s in specs if s.name == name]
    if not chosen:
        raise UserError(f"no model spec named {name!r}; known: {sorted(s.name for s in specs)}")
    return chosen


def cmd_score(args: argparse.Namespace) -> int:
    """Everything up to the scores, the models' own assets left out; only the range's days of the
    scores tables are written, each row naming the champion version that scored it."""
    import dagster as dg

    from headwater.headless import TRAINING, partition_range
    from headwater_core.names import CHAMPION, MONITORING, SCORES, SERVING, model_keys
    from ml_assets.models.tracking import MlflowTracking

    configure_environment()
    partition_range(args.start, args.end)  # a wrong range fails before MLflow is asked
    specs = _specs(args.model)
    tracking = MlflowTracking()
    without = [
        s.registered_model_name
        for s in specs
        if tracking.version_by_alias(s.registered_model_name, CHAMPION) is None
    ]
    if len(without) == len(specs):
        raise UserError(
            f"no champion for {', '.join(without)} in MLflow at {tracking.resolved_uri()}: "
            "train one first (headwater materialize --start D --end D)"
        )
    for name in without:
        print(f"headwater score: {name} has no champion yet; its days are not scored")
    scores = dg.AssetSelection.assets(*[dg.AssetKey(model_keys(s.name)["scores"]) for s in specs])
    selection = (
        dg.AssetSelection.all()
        - TRAINING
        - dg.AssetSelection.groups(MONITORING, SERVING)
        - (dg.AssetSelection.groups(SCORES) - scores)
    )
    return _run(args, selection, "score")


def cmd_monitor(args: argparse.Namespace) -> int:
    """Drift and realised performance of each day of the range, in one run."""
    import dagster as dg

    from headwater_core.names import MONITORING_ROLES, model_keys

    configure_environment()
    roles = [args.only] if args.only else list(MONITORING_ROLES)
    keys = [
        dg.AssetKey(model_keys(s.name)[role])
        for s in _specs(args.model)
        for role in roles
        if role != "performance" or s.monitoring.performance is not None
    ]
    if not keys:
        raise UserError(f"{args.model or 'no model'} declares no {args.only} monitoring")
    return _run(args, dg.AssetSelection.assets(*keys), "monitor")


def _day(text: str) -> str:
    """A --start / --end bound: a date, or a partition key that starts with one."""
    try:
        date.fromisoformat(text[:10])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return text


def _range_options(parser: argparse.ArgumentParser, required: bool) -> None:
    what = "" if required else " (needed when the selection holds partitioned assets)"
    parser.add_argument(
        "--start", type=_day, required=required, help=f"first day, YYYY-MM-DD{what}"
    )
    parser.add_argument("--end", type=_day, required=required, help="last day, included")


def add_verbs(sub, add_demo_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """`materialize`, `score` and `monitor`."""
    mat = sub.add_parser(
        "materialize",
        help="materialise a selection (default: the whole graph but monitoring) for a range",
    )
    _range_options(mat, required=False)
    mat.add_argument("--select", help=SELECT_HELP)
    mat.add_argument(
        "--no-train",
        action="store_true",
        help="leave out training, evaluation and the champion: score with the current champion",
    )
    mat.add_argument("--generate", action="store_true", help="generate demo data if absent")
    add_demo_options(mat)
    mat.set_defaults(func=cmd_materialize)

    score = sub.add_parser(
        "score",
        help="land a range, build the warehouse and features, and score it with the current "
        "champions, without retraining",
    )
    _range_options(score, required=True)
    score.add_argument("--model", help="one model spec name (default: every model)")
    score.set_defaults(func=cmd_score)

    monitor = sub.add_parser(
        "monitor", help="drift and realised performance of every day of a range, in one run"
    )
    _range_options(monitor, required=True)
    monitor.add_argument("--model", help="one model spec name (default: every model)")
    monitor.add_argument("--only", choices=["drift", "performance"], help="one of the two")
    monitor.set_defaults(func=cmd_monitor)
