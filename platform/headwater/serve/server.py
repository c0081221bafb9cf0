"""`headwater serve`: the settings, the service built from them, and uvicorn running it.

Everything is read when the command runs (its arguments, then the environment through the
platform's resources), nothing at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from headwater.serve.features import FeatureSource, RequestFeatureSource

DEFAULT_PORT = 8000
SWITCH_INTERVAL_SECONDS = 0.0002


@dataclass(frozen=True)
class ServeSettings:
    """One service's settings (the command's options)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    poll_seconds: float = 5.0  # how often the registry's aliases are read
    max_rows: int = 1000  # rows one request may carry
    log_dir: Path | None = None  # the prediction log (default: prediction_log.log_dir())
    flush_rows: int = 1000
    flush_seconds: float = 1.0
    tracking_uri: str = ""  # MLflow (default: $MLFLOW_TRACKING_URI, else the embedded store)
    model_specs: Path | None = None  # a folder of specs (default: the project's)
    feature_source: str = "request"
    online_store: str = ""  # the online store's URL (default: $HEADWATER_ONLINE_STORE, else SQLite)
    online_engine: str = (
        "auto"  # what runs the feature SQL: auto (SQLite when it can), sqlite, duckdb
    )
    log_level: str = "warning"


# name -> (spec, settings) -> a FeatureSource; the online store registers itself here.
FEATURE_SOURCES: dict[str, Callable[[object, ServeSettings], FeatureSource]] = {
    "request": lambda spec, _settings: RequestFeatureSource.for_spec(spec),
    "online": lambda spec, settings: _online_source(spec, settings),
}


def _online_source(spec, settings: ServeSettings) -> FeatureSource:
    from headwater.serve.online import OnlineRequestSource

    return OnlineRequestSource.open(spec, settings.online_store, settings.online_engine)


def build_app(settings: ServeSettings):
    """The FastAPI app serving every model spec's champion, with its poller and logger."""
    from headwater.serve.app import create_app
    from headwater.serve.champion import ChampionHolder, ModelSlot
    from headwater.serve.model import load_served
    from headwater.serve.shadow import PredictionLogger
    from ml_assets.models.spec import load_specs
    from ml_assets.models.tracking import MlflowTracking
    from ml_assets.serving.prediction_log import PredictionLogWriter, log_dir

    if settings.feature_source not in FEATURE_SOURCES:
        raise SystemExit(
            f"unknown feature source {settings.feature_source!r}; known: {sorted(FEATURE_SOURCES)}"
        )
    make_source = FEATURE_SOURCES[settings.feature_source]
    tracking = MlflowTracking(tracking_uri=settings.tracking_uri)
    slots = {
        spec.name: ModelSlot(spec=spec, source=make_source(spec, settings))
        for spec in load_specs(settings.model_specs)
    }
    holder = ChampionHolder(
        tracking,
        slots,
        lambda spec, version, alias: load_served(tracking, spec, version, alias),
        settings.poll_seconds,
    )
    writer = PredictionLogWriter(settings.log_dir or log_dir(), flush_rows=settings.flush_rows)
    logger = PredictionLogger(writer, settings.flush_seconds).start()
    return create_app(holder, logger, settings.max_rows)


def run(settings: ServeSettings) -> int:
    """Serve until SIGINT or SIGTERM (uvicorn's own handling: in-flight requests finish, then
    the log is flushed)."""
    import sys

    import uvicorn

    # The request path and the prediction log's worker share the GIL: with Python's default
    # 5 ms switch interval a request that arrives while the worker records or flushes waits up
    # to 5 ms before it runs at all. Switching every 0.2 ms bounds that wait.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    app = build_app(settings)
    print(
        f"headwater serve: http://{settings.host}:{settings.port} (docs at /docs), "
        f"polling the registry every {settings.poll_seconds:g} s",
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )
    return 0


def add_serve_command(sub) -> None:
    """`headwater serve [--host H] [--port P] [--poll-seconds S] [--max-rows N] ...`"""
    serve = sub.add_parser(
        "serve",
        help="serve every model's champion over HTTP (POST /v1/models/NAME/predict)",
    )
    d = ServeSettings()
    serve.add_argument("--host", default=d.host, help="interface (0.0.0.0 exposes it)")
    serve.add_argument("--port", type=int, default=d.port)
    serve.add_argument(
        "--poll-seconds",
        type=float,
        default=d.poll_seconds,
        help="how often the registry's champion and challenger aliases are read",
    )
    serve.add_argument("--max-rows", type=int, default=d.max_rows, help="rows per request")
    serve.add_argument("--log-dir", type=Path, help="the prediction log (default <state>/serving)")
    serve.add_argument("--flush-rows", type=int, default=d.flush_rows)
    serve.add_argument("--flush-seconds", type=float, default=d.flush_seconds)
    serve.add_argument("--tracking-uri", default="", help="MLflow (default: as the platform)")
    serve.add_argument(
        "--model-specs", type=Path, help="folder of model specs (default: the project's)"
    )
    serve.add_argument(
        "--feature-source",
        default=d.feature_source,
        help=f"where features come from ({', '.join(sorted(FEATURE_SOURCES))})",
    )
    serve.add_argument(
        "--online-store",
        default="",
        help="online store URL for --feature-source online (default: $HEADWATER_ONLINE_STORE, "
        "else <state>/online.sqlite)",
    )
    serve.add_argument(
        "--online-engine",
        default=d.online_engine,
        choices=["auto", "sqlite", "duckdb"],
        help="what runs the online feature SQL: auto (SQLite unless the snapshot could not "
        "rewrite the SQL for it), sqlite, or duckdb (the SQL as dbt compiled it)",
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from headwater.environment import configure_environment

    configure_environment()
    return run(
        ServeSettings(
            host=args.host,
            port=args.port,
            poll_seconds=args.poll_seconds,
            max_rows=args.max_rows,
            log_dir=args.log_dir,
            flush_rows=args.flush_rows,
            flush_seconds=args.flush_seconds,
            tracking_uri=args.tracking_uri,
            model_specs=args.model_specs,
            feature_source=args.feature_source,
            online_store=args.online_store,
            online_engine=args.online_engine,
        )
    )
