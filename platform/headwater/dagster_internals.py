"""The only Dagster internals (`dagster._...`) the project uses, for what Dagster has no public
API for: playing simulated time through the real automation in one process, and telling run
monitoring that a run's process is gone.

- A frozen clock (`dagster._core.test_utils.freeze_time`). Dagster stamps every event (a run's
  materialisations and check results, a reported event, a freshness state change) with its own
  clock, and the conditions and freshness policies compare those stamps with the tick's time.
  `dg.evaluate_automation_conditions(evaluation_time=...)` takes a time, but nothing that writes
  an event does; freezing Dagster's clock is what makes a simulated day's events carry that
  day. Patching `time.time` or `datetime` instead would move every library's clock, not only
  Dagster's.
- Freshness evaluation as the freshness daemon does it (`FreshnessDaemon._evaluate_asset` on an
  `AssetGraphView.for_test` of the definitions): it records the freshness state changes that
  `AutomationCondition.freshness_failed()` reads. Dagster 1.13 runs it only inside its daemon.
- The answer a run launcher gives run monitoring about a run's worker (`CheckRunHealthResult`,
  `WorkerStatus`, from `dagster._core.launcher`): the public `DefaultRunLauncher` can be
  subclassed, but the type its health check returns is not exported (`run_launcher.py`).

Written for Dagster `DAGSTER_VERSION`, the version uv.lock pins.
tests/unit/test_dagster_internals.py fails, naming what changed, when another version is
installed or an internal is gone, so an upgrade of Dagster reviews this module first.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import dagster as dg

DAGSTER_VERSION = "1.13.27"

# (module, attribute path) of every internal used here.
INTERNALS = (
    ("dagster._core.test_utils", "freeze_time"),
    ("dagster._daemon.freshness", "FreshnessDaemon._evaluate_asset"),
    ("dagster._core.asset_graph_view.asset_graph_view", "AssetGraphView.for_test"),
    ("dagster._core.launcher", "CheckRunHealthResult"),
    ("dagster._core.launcher", "WorkerStatus"),
)


def missing_internals() -> list[str]:
    """The internals in `INTERNALS` the installed Dagster lacks, as `module.attribute`."""
    missing = []
    for module_name, path in INTERNALS:
        try:
            found = importlib.import_module(module_name)
            for attribute in path.split("."):
                found = getattr(found, attribute)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{path}")
    return missing


def compatibility_problems() -> list[str]:
    """Why this adapter may not work with the installed Dagster; empty when it was written for
    it."""
    problems = []
    if dg.__version__ != DAGSTER_VERSION:
        problems.append(
            f"dagster {dg.__version__} is installed, but {__name__} was written for "
            f"{DAGSTER_VERSION}: check that the internals it uses still behave the same, then "
            "update DAGSTER_VERSION"
        )
    problems.extend(f"dagster has no {name} any more" for name in missing_internals())
    return problems


@contextmanager
def frozen_clock(at: datetime) -> Iterator[None]:
    """Dagster's clock stopped at `at` for the block: every event written meanwhile carries it."""
    from dagster._core.test_utils import freeze_time

    with freeze_time(at):
        yield


def evaluate_freshness(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Evaluate every freshness policy of `defs` now, as the freshness daemon's iteration does,
    recording each state change in `instance`."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
    from dagster._daemon.freshness import FreshnessDaemon

    view = AssetGraphView.for_test(defs, instance)
    daemon = FreshnessDaemon()
    nodes = [n for n in view.asset_graph.asset_nodes if n.freshness_policy is not None]

    async def evaluate_all():
        for node in nodes:
            await daemon._evaluate_asset(view, node)  # noqa: SLF001 - the daemon's own code

    asyncio.run(evaluate_all())


def worker_health(alive: bool, message: str):
    """What a run launcher's `check_run_worker_health` returns: the worker running, or failed."""
    from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

    return CheckRunHealthResult(WorkerStatus.RUNNING if alive else WorkerStatus.FAILED, message)
