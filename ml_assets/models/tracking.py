"""The platform's MLflow resource (tracking and registry, local by default) and the boosters
loaded back from it.

`tracking_uri` empty means $MLFLOW_TRACKING_URI, else the embedded store: SQLite at
`<state>/mlflow/mlflow.db` with artifacts in `<state>/mlflow/artifacts`, started as a copy of an
empty store (`ml_assets.models.mlflow_store`). mlflow itself is
imported inside the methods, so loading the code location does not pay for it.
"""

import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from headwater_core.config import mlflow_ui_url, state_dir

# CHALLENGER and CHAMPION are re-exported: callers name the aliases with the resource.
from headwater_core.names import CHALLENGER, CHAMPION, TAG_HOLDOUT_ARTIFACT  # noqa: F401

# Rows MLflow reads to describe a logged dataset's columns (see `training_dataset`).
SCHEMA_SAMPLE_ROWS = 1_000

# The reachability check of a tracking server: tries, seconds each may take, and the pause
# before the second try (doubled before each next one): a few seconds in all, where MLflow's
# own client retries a refused connection for about four minutes.
REACHABLE_TRIES = 3
REACHABLE_TIMEOUT_SECONDS = 3.0
REACHABLE_BACKOFF_SECONDS = 0.5
# How long a server that answered is taken to be up (`MlflowTracking.client`): uri -> when.
REACHABLE_FOR_SECONDS = 60.0
_CONFIRMED: dict[str, float] = {}


class MlflowUnreachable(RuntimeError):
    """The tracking server does not answer its health check."""


def check_reachable(
    uri: str,
    tries: int = REACHABLE_TRIES,
    timeout: float = REACHABLE_TIMEOUT_SECONDS,
    backoff: float = REACHABLE_BACKOFF_SECONDS,
) -> None:
    """Raise MlflowUnreachable, naming `uri`, unless the tracking server answers `GET /health`
    within `tries` tries. A store that is not a server (SQLite, a folder, Databricks) passes:
    there is nothing to reach. A server that asks for credentials (401, 403) is reachable."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    cause = ""
    for attempt in range(tries):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status == 200:
                    return
                cause = f"HTTP {response.status}"
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                return
            cause = f"HTTP {e.code}"
        except urllib.error.URLError as e:
            cause = str(e.reason)
        except OSError as e:  # a timeout while reading the answer
            cause = str(e) or type(e).__name__
    raise MlflowUnreachable(
        f"MLflow tracking server {uri} is unreachable: GET {url} failed {tries} times "
        f"({cause}). Start it, or point MLFLOW_TRACKING_URI (or the mlflow_tracking "
        "resource's tracking_uri) at one that runs."
    )


@dataclass(frozen=True)
class VersionRef:
    """A registered model version as the platform uses it (MLflow returns the number as int or
    str depending on the store; here it is always a str)."""

    version: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)


class MlflowTracking(dg.ConfigurableResource):
    """Where training runs are tracked and models registered (MLflow), and the threads the
    steps that fit or load its boosters give LightGBM (`headwater_core.compute`: one below
    `small_training_rows`, else `training_threads`). Set them with `dg.EnvVar` or the variables
    named below."""

    tracking_uri: str = ""
    training_threads: int = 0
    """LightGBM's threads on a large set; 0: $HEADWATER_THREADS, else the cores available."""
    small_training_rows: int = -1
    """Below this many rows LightGBM gets one thread; -1: $HEADWATER_SMALL_TRAINING_ROWS, else
    100,000; 0 turns the rule off."""
    openmp_wait_policy: str = ""
    """OMP_WAIT_POLICY for LightGBM; empty: $HEADWATER_OPENMP_WAIT_POLICY, else PASSIVE;
    "default" leaves OpenMP's (spinning) default."""

    def prepare_lightgbm(self) -> None:
        """OpenMP's wait policy, set before this process first loads LightGBM."""
        from headwater_core.compute import prepare_openmp

        prepare_openmp(self.openmp_wait_policy)

    def threads_for(self, rows: int) -> int:
        """LightGBM's threads for a fit or prediction over `rows` rows."""
        from headwater_core.compute import training_threads

        return training_threads(rows, self.training_threads, self.small_training_rows)

    def _embedded_dir(self) -> Path:
        return state_dir() / "mlflow"

    def resolved_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        folder = self._embedded_dir()
        folder.mkdir(parents=True, exist_ok=True)
        database = folder / "mlflow.db"
        if not database.exists():
            from ml_assets.models.mlflow_store import seed_store

            seed_store(database)  # a copy of an empty store, not MLflow's migrations run anew
        return f"sqlite:///{database}"

    def check_reachable(self) -> None:
        """Raise MlflowUnreachable unless the tracking server answers (see `check_reachable`);
        a step calls it before work that MLflow would only be asked to record afterwards."""
        check_reachable(self.resolved_uri())

    def client(self):
        """The MLflow client, once the server has answered its health check (in this process,
        within the last REACHABLE_FOR_SECONDS): MLflow's own client would retry a refused
        connection for minutes before failing.

        Not checked when the resource is set up: a run that loads raw data and trains a model
        in one process would then load nothing while MLflow is down."""
        import mlflow

        uri = self.resolved_uri()
        confirmed = _CONFIRMED.get(uri)
        if confirmed is None or time.monotonic() - confirmed > REACHABLE_FOR_SECONDS:
            check_reachable(uri)
            _CONFIRMED[uri] = time.monotonic()
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)

    def experiment_id(self, name: str) -> str:
        client = self.client()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        artifact_location = None
        uri = self.resolved_uri()
        if uri.startswith("sqlite:///"):
            # A SQLite store keeps its artifacts beside the database file (MLflow's default is
            # ./mlruns in the current directory); a tracking server owns its artifact root.
            database = Path(uri.removeprefix("sqlite:///"))
            artifact_location = (database.parent / "artifacts").as_uri()
        return client.create_experiment(name, artifact_location=artifact_location)

    @contextmanager
    def start_run(self, experiment: str, run_name: str, tags: dict[str, str]) -> Iterator:
        import mlflow

        experiment_id = self.experiment_id(experiment)
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            yield run

    def version_by_alias(self, model_name: str, alias: str) -> VersionRef | None:
        """The model version holding the alias, or None if nobody holds it yet."""
        from mlflow.exceptions import MlflowException

        try:
            v = self.client().get_model_version_by_alias(model_name, alias)
        except MlflowException:
            return None
        return VersionRef(version=str(v.version), run_id=v.run_id, tags=dict(v.tags))

    def version_of(self, model_name: str, version: str) -> VersionRef:
        """A named version (it must exist)."""
        v = self.client().get_model_version(model_name, str(version))
        return VersionRef(version=str(v.version), run_id=v.run_id, tags=dict(v.tags))

    def run_link(self, experiment_id: str, run_id: str) -> str:
        uri = self.resolved_uri()
        if uri.startswith("http"):
            return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        # The embedded store has no server of its own: the UI `headwater dev` serves on it.
        return f"{mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"


def training_dataset(frame, *, source: str, name: str, targets: str, digest: str | None):
    """The MLflow dataset of a model's training rows, for `mlflow.log_input`.

    MLflow infers a pandas dataset's schema by reading every value of every column (5-6 s of
    the model step at 1M rows, docs/benchmarks.md); the columns' types are the same in the
    first rows, so the schema is inferred from those. The profile (row count) is the whole
    frame's."""
    import mlflow
    from mlflow.models import infer_signature

    dataset = mlflow.data.from_pandas(
        frame, source=source, name=name, targets=targets, digest=digest
    )
    # `schema` is a cached property: filling its cache means it is never computed from `frame`.
    dataset.__dict__["schema"] = infer_signature(frame.head(SCHEMA_SAMPLE_ROWS)).inputs
    return dataset


# Boosters loaded in this process: (store, model, version) -> booster. A version's model never
# changes once registered, so scoring loads the champion once per process, not once per run.
_BOOSTERS: dict[tuple[str, str, str], object] = {}


def load_booster(tracking: MlflowTracking, model_name: str, version: str):
    """The LightGBM booster a registered version serves with (loaded once per process)."""
    key = (tracking.resolved_uri(), model_name, str(version))
    if key not in _BOOSTERS:
        import mlflow

        tracking.prepare_lightgbm()
        tracking.client()
        _BOOSTERS[key] = mlflow.lightgbm.load_model(f"models:/{model_name}/{version}")
    return _BOOSTERS[key]


def load_judged(tracking: MlflowTracking, model_name: str, version: VersionRef):
    """The booster the gate judges for a version: its held-out twin when the served model was
    refit on the test window (judging the refit there would grade it on rows it has seen)."""
    tracking.prepare_lightgbm()
    artifact = version.tags.get(TAG_HOLDOUT_ARTIFACT)
    if not artifact:
        return load_booster(tracking, model_name, version.version)
    import tempfile

    import lightgbm as lgb
    import mlflow

    tracking.client()
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=artifact, dst_path=folder
        )
        return lgb.Booster(model_file=local)
