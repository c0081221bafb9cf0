"""The `headwater` command: demo data, the embedded platform, and headless materialisation.

    headwater dev                       generate demo data if absent (or land its missing days),
                                        serve the UI, the daemon, the MLflow UI and the
                                        monitoring reports
    headwater materialize --start D --end D [--select SEL] [--no-train] [--generate]
                                        materialise a selection (default: the whole graph but
                                        monitoring) for [start, end] and summarise
    headwater score --start D --end D   land, build and score [start, end] with the champions,
                                        without retraining
    headwater monitor --start D --end D drift and performance of every day, in one run
    headwater generate [...]            write demo landing files (see --help)
    headwater models [NAME]             registered versions, aliases and gate decisions
    headwater rollback NAME --to-version N --reason TEXT
                                        move a model's `champion` alias back to version N
    headwater serve [--port P]          serve every model's champion over HTTP (docs/serving.md)
    headwater stack [--create-databases]
                                        the production profile on this machine: PostgreSQL
                                        instance, MLflow server, code servers, daemon, UI
    headwater replay --model NAME --period NAME:FIRST:LAST[:SHIFT_START] ...
                                        replay a model's monitoring day by day over periods of
                                        the built warehouse: false alarms and detection delay
    headwater init DIR                  an empty project (no demo) in DIR
    headwater demo remove               delete the demo's files from the project

Every subcommand works on the configured project ($HEADWATER_PROJECT_DIR, default the
repository), resolves the state folder the same way ($HEADWATER_HOME, default
`<project>/.headwater`) and sets the variables the resources and dbt read, unless already set. A
failing subcommand prints one line, not a traceback (errors.run_command).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from datetime import date, timedelta
from pathlib import Path

from headwater.environment import (
    EMBEDDED_INSTANCE_CONFIG as EMBEDDED_INSTANCE_CONFIG,  # re-exported for scripts and tests
)
from headwater.environment import WORKSPACE as WORKSPACE  # re-exported for tests
from headwater.environment import configure_environment
from headwater.errors import OneLineParser, run_command
from headwater.project import add_project_commands
from headwater.serve.server import add_serve_command
from headwater.verbs import add_verbs
from headwater_core.config import MLFLOW_UI_PORT, state_dir
from headwater_core.names import TAG_GATE, TAG_GATE_REASON

# The demo: 150 days up to yesterday (UTC), so that daily partitions, freshness and automation
# look live; `headwater dev` and the demo feed job then land each new day (generator/feed.py).
# 150 days because labels mature after 61: the first champion trains on days up to ~90 and its
# drift reference is the newest two weeks of that, past the month in which the demo world's
# history features (7- and 30-day windows, first visits to a merchant) still fill up. A 90-day
# demo trained on that warm-up and raised drift alarms on clean days.
DEMO_DAYS = 150
DEMO_TRANSACTIONS = 333_300  # 2,222 a day
REPORTS_PORT = 3001


def _demo_config(args: argparse.Namespace):
    from fraud_demo.feed import yesterday_utc
    from fraud_demo.generator import DRIFT_SCENARIOS, DriftScenario, GeneratorConfig

    # Daily partitions are UTC days, and the newest one is yesterday.
    start = (
        date.fromisoformat(args.start_date)
        if args.start_date
        else (yesterday_utc() - timedelta(days=args.days - 1))
    )
    drift = None
    if args.drift:
        if args.drift not in DRIFT_SCENARIOS:
            raise SystemExit(
                f"unknown drift scenario {args.drift!r}; known: {sorted(DRIFT_SCENARIOS)}"
            )
        onset = (
            date.fromisoformat(args.drift_start)
            if args.drift_start
            else (start + timedelta(days=args.days * 2 // 3))
        )
        drift = DriftScenario(name=args.drift, starts_on=onset)
    return GeneratorConfig(
        seed=args.seed,
        start_date=start,
        days=args.days,
        transactions=args.transactions,
        drift=drift,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from fraud_demo.generator import generate

    configure_environment()
    landing = Path(os.environ["HEADWATER_LANDING_DIR"])
    summary = generate(_demo_config(args), landing, progress=not args.quiet)
    print(summary)
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from headwater.dev_server import DevConfig, serve
    from headwater_core.dbt.project import ensure_manifest
    from ml_assets.models.tracking import MlflowTracking

    home = configure_environment()
    serve_port = None if args.serve_port < 0 else args.serve_port
    config = DevConfig(home, args.host, args.port, args.reports_port, args.mlflow_port, serve_port)

    def prepare() -> None:
        _prepare_demo(args, Path(os.environ["HEADWATER_LANDING_DIR"]))
        ensure_manifest()

    return serve(config, MlflowTracking().resolved_uri(), prepare)


def _prepare_demo(args: argparse.Namespace, landing: Path) -> None:
    """Bring the embedded demo up to yesterday: generate it into an empty landing folder, or land
    the days missing since it was last fed. A folder of someone else's files, or a project
    without the demo's sources, is left alone."""
    from data_platform.demo_feed import has_demo_sources
    from data_platform.raw.contract import load_contracts
    from fraud_demo.feed import DEMO_RECORD, feed_demo, start_demo
    from headwater_core.config import dbt_project_dir

    if not has_demo_sources(load_contracts(dbt_project_dir()).values()):
        return

    fed = feed_demo(landing, progress=True)
    if fed is not None:
        if fed.days_landed:
            print(f"headwater: demo landed {fed.days_landed} new day(s), up to {fed.end}")
        return
    if start_demo(_demo_config(args), landing) is None:
        print(
            f"headwater: {landing} holds landing files but no {DEMO_RECORD}: they are used as "
            "they are, and the demo feed does not add days to them",
            flush=True,
        )


def cmd_simulate(args: argparse.Namespace) -> int:
    from headwater.simulation.cli import run_from_arguments

    return run_from_arguments(args)


def cmd_models(args: argparse.Namespace) -> int:
    from ml_assets.models.registry import history
    from ml_assets.models.spec import load_specs
    from ml_assets.models.tracking import MlflowTracking

    configure_environment()
    tracking = MlflowTracking()
    uri = tracking.resolved_uri()
    print(f"MLflow: {uri}")
    for spec in load_specs():
        if args.name and spec.name != args.name:
            continue
        name = spec.registered_model_name
        try:
            rows = [
                f"| {row['version']} | {row['aliases']} | {row.get(TAG_GATE, '')} | "
                f"{row.get(TAG_GATE_REASON, '')} |"
                for row in history(tracking, name)
            ]
        except Exception as e:
            if not _not_registered(e):
                raise SystemExit(
                    f"headwater models: cannot read {name} from MLflow at {uri}: {e}"
                ) from e
            rows = [f"| - | - | - | not trained yet ({type(e).__name__}) |"]
        print(f"\n{name}\n")
        print("| version | aliases | gate | reason |\n|---|---|---|---|")
        for line in rows:
            print(line)
    return 0


def _not_registered(error: Exception) -> bool:
    """Whether `error` is MLflow's answer for a registered model that does not exist."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    return isinstance(error, MlflowException) and error.error_code == ErrorCode.Name(
        RESOURCE_DOES_NOT_EXIST
    )


def cmd_rollback(args: argparse.Namespace) -> int:
    from ml_assets.models.registry import IncompleteVersionError, rollback
    from ml_assets.models.spec import load_specs
    from ml_assets.models.tracking import MlflowTracking

    configure_environment()
    specs = {s.name: s for s in load_specs()}
    if args.name not in specs:
        raise SystemExit(f"unknown model {args.name!r}; known: {sorted(specs)}")
    name = specs[args.name].registered_model_name
    try:
        previous = rollback(MlflowTracking(), name, args.to_version, args.reason)
    except IncompleteVersionError as e:  # a half-registered version never becomes champion
        raise SystemExit(f"headwater rollback: {e}") from e
    print(f"{name}: champion {previous or 'none'} -> {args.to_version} ({args.reason})")
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from headwater.stack import PgSettings, StackConfig, run_stack

    config = StackConfig(
        state=state_dir().resolve(),
        host=args.host,
        port=args.port,
        read_only=args.read_only,
        mlflow_port=args.mlflow_port,
        data_code_port=args.data_code_port,
        ml_code_port=args.ml_code_port,
        serve_port=args.serve_port,
    )
    return run_stack(config, PgSettings.from_env(os.environ), create=args.create_databases)


def _add_demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=DEMO_DAYS, help="days of demo data")
    parser.add_argument("--start-date", help="first demo day (default: --days before today)")
    parser.add_argument("--transactions", type=int, default=DEMO_TRANSACTIONS)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--drift", help="a named drift scenario, e.g. crypto_wave")
    parser.add_argument(
        "--drift-start", help="the drift's first day (default: 2/3 into the window)"
    )


def _add_dev(sub) -> None:
    dev = sub.add_parser("dev", help="serve the Dagster UI and daemon on the embedded instance")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument(
        "--reports-port",
        type=int,
        default=REPORTS_PORT,
        help=f"port of the monitoring reports' HTTP server (default {REPORTS_PORT}; 0: any free)",
    )
    dev.add_argument(
        "--mlflow-port",
        type=int,
        default=MLFLOW_UI_PORT,
        help=f"port of the MLflow UI on the embedded store, which the models' run links name "
        f"(default {MLFLOW_UI_PORT}; 0: any free)",
    )
    dev.add_argument(
        "--serve-port",
        type=int,
        default=8000,
        help="port of `headwater serve`, the models' champions over HTTP (default 8000; 0: any "
        "free; -1: not started)",
    )
    _add_demo_options(dev)
    dev.set_defaults(func=cmd_dev)


def _add_data_commands(sub) -> None:
    """`generate`, and the headless verbs: `materialize`, `score`, `monitor`."""
    gen = sub.add_parser("generate", help="write demo landing files")
    _add_demo_options(gen)
    gen.add_argument("--quiet", action="store_true")
    gen.set_defaults(func=cmd_generate)
    add_verbs(sub, _add_demo_options)


def _add_model_commands(sub) -> None:
    """`models` and `rollback`."""
    models = sub.add_parser("models", help="registered model versions and gate decisions")
    models.add_argument("name", nargs="?", help="one model spec name (default: all)")
    models.set_defaults(func=cmd_models)

    back = sub.add_parser("rollback", help="move a model's champion alias to an earlier version")
    back.add_argument("name", help="model spec name, e.g. fraud_classifier")
    back.add_argument("--to-version", required=True)
    back.add_argument("--reason", required=True, help="recorded on the model version")
    back.set_defaults(func=cmd_rollback)


def _add_stack(sub) -> None:
    stack = sub.add_parser(
        "stack",
        help="the production profile natively: PostgreSQL instance, MLflow server, code "
        "servers, daemon and UI (docs/deploy.md)",
    )
    stack.add_argument(
        "--host", default="127.0.0.1", help="the UI's interface (0.0.0.0 exposes it)"
    )
    stack.add_argument("--port", type=int, default=3000)
    stack.add_argument(
        "--read-only", action="store_true", help="a UI that can look but not launch or stop"
    )
    stack.add_argument("--mlflow-port", type=int, default=5000)
    stack.add_argument("--data-code-port", type=int, default=4000)
    stack.add_argument("--ml-code-port", type=int, default=4001)
    stack.add_argument("--serve-port", type=int, default=8000, help="`headwater serve`")
    stack.add_argument(
        "--create-databases",
        action="store_true",
        help="create $DAGSTER_PG_DB and $MLFLOW_PG_DB on the server if missing",
    )
    stack.set_defaults(func=cmd_stack)


def _add_simulate(sub) -> None:
    from headwater.simulation.cli import add_arguments

    sim = sub.add_parser(
        "simulate",
        help="play N days through the real automation (drift, retraining, promotion)",
    )
    add_arguments(sim)
    sim.set_defaults(func=cmd_simulate)


def _add_replay(sub) -> None:
    from headwater.replay import add_arguments, run_from_arguments

    replay = sub.add_parser(
        "replay", help="replay a model's monitoring over periods: false alarms, detection delay"
    )
    add_arguments(replay)
    replay.set_defaults(func=run_from_arguments)


def build_parser() -> argparse.ArgumentParser:
    """The `headwater` command's parser: each subcommand's `func` runs it."""
    parser = OneLineParser(prog="headwater", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_dev(sub)
    _add_data_commands(sub)
    _add_model_commands(sub)
    add_serve_command(sub)
    _add_stack(sub)
    _add_simulate(sub)
    _add_replay(sub)
    add_project_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a failure is one line on stderr (errors.run_command)."""
    # Dagster announces every beta or preview API it is asked for on stderr, at each import.
    warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")
    args = build_parser().parse_args(argv)
    return run_command(args.command, lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
