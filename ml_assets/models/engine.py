"""Where the models train and score: in the step's own process (the default), or on a Dask
cluster (`TrainingEngine`, a resource of the ML location).

The engine changes where LightGBM runs, not what it learns: both engines fit the same features,
split and categories and return plain LightGBM Boosters (`train.Fitted`), which the model asset
registers and the evaluation gates like any version. The single-process path is `train.fit`
itself; the Dask one is `dask_training`.
"""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from ml_assets.models.spec import ModelSpec

# The variable holding the scheduler's address when the resource's field is empty.
DASK_SCHEDULER_ENV = "HEADWATER_DASK_SCHEDULER"


class DaskUnreachable(RuntimeError):
    """The configured Dask scheduler did not answer."""


class SingleProcess:
    """LightGBM in the step's process: `train.fit`, and `score_window`'s own predictions."""

    def fit(self, spec: ModelSpec, table, threads: int = 0, small_rows: int = -1):
        from ml_assets.models.train import fit

        return fit(spec, table, threads, small_rows)

    def predictor(self, booster) -> Callable | None:
        """How a frame of features is scored: None is `train.predict` in this process."""
        return None

    def metadata(self) -> dict:
        return {"training_engine": "single process"}


@dataclass
class OnDask:
    """LightGBM on the Dask cluster `client` is connected to."""

    client: object
    score_partitions: int
    placement: dict = field(default_factory=dict)

    def fit(self, spec: ModelSpec, table, threads: int = 0, small_rows: int = -1):
        # the workers' threads are the cluster's own (threads_per_worker), not this process's
        from ml_assets.models.dask_training import fit_on_dask

        fitted, placement = fit_on_dask(self.client, spec, table)
        self.placement = placement.partitions
        return fitted

    def predictor(self, booster) -> Callable:
        """A frame's scores computed on the cluster, `partitions()` dask partitions at a time."""
        from ml_assets.models.dask_training import predict_on_dask

        def on_cluster(frame):
            return predict_on_dask(self.client, booster, frame, self.partitions())

        return on_cluster

    def partitions(self) -> int:
        """Partitions a scored frame is cut into: the setting, else two per worker thread."""
        if self.score_partitions > 0:
            return self.score_partitions
        threads = sum(self.client.nthreads().values())
        return max(1, 2 * threads)

    def metadata(self) -> dict:
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        return {
            "training_engine": "dask",
            "dask_scheduler": self.client.scheduler.address,
            "dask_workers": len(workers),
            **(
                {"dask_machines": sum(1 for n in self.placement.values() if n)}
                if self.placement
                else {}
            ),
        }


class TrainingEngine(dg.ConfigurableResource):
    """Where LightGBM fits the models and scores the windows.

    `dask_scheduler` empty means $HEADWATER_DASK_SCHEDULER, read when a step starts; both empty
    means the step's own process. An address (`tcp://scheduler:8786`) trains with
    `lightgbm.dask` and scores with dask dataframe partitions on that cluster. The workers run
    the same image as the code servers (they import `ml_assets` to score)."""

    dask_scheduler: str = ""
    """The Dask scheduler's address; empty: $HEADWATER_DASK_SCHEDULER, else no cluster."""
    connect_timeout_seconds: float = 30.0
    """How long a step waits for the scheduler to answer before it fails."""
    score_partitions: int = 0
    """Partitions a batch of rows to score is cut into on the cluster; 0: two per worker
    thread."""

    def resolved_scheduler(self) -> str:
        return self.dask_scheduler or os.environ.get(DASK_SCHEDULER_ENV, "")

    @contextmanager
    def session(self) -> Iterator[SingleProcess | OnDask]:
        """The engine for one step: connected to the cluster (and closed after) if one is set."""
        address = self.resolved_scheduler()
        if not address:
            yield SingleProcess()
            return
        from distributed import Client

        try:
            client = Client(address, timeout=self.connect_timeout_seconds, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise DaskUnreachable(
                f"the Dask scheduler {address} did not answer within "
                f"{self.connect_timeout_seconds:g} s ({e}). Start it, or point "
                f"{DASK_SCHEDULER_ENV} (or the training_engine resource's dask_scheduler) at "
                "one that runs; unset, the models train in the step's process."
            ) from e
        try:
            yield OnDask(client, self.score_partitions)
        finally:
            client.close()
