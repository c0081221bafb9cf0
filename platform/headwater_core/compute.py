"""How many threads and how much memory the heavy libraries get: DuckDB, LightGBM and Evidently
(numpy's BLAS). The rules, and their settings read when a step runs (never at import); the
resources (`Warehouse`, `MlflowTracking`) hold the values a deployment sets, this module the
defaults.                                                                          (no Dagster)

Why bound them: every library sizes its thread pool to the machine's cores, as if it were alone.
On a machine shared with other runs, LightGBM's OpenMP threads wait for each other at every
split; by default they wait *spinning*, so a thread that lost its core to another process makes
its partner burn the other core until it is back. A 10k-row fit of 300 rounds took 0.8 s with one
thread and 45-56 s with two on this 2-core machine under load (docs/benchmarks.md). Hence one
thread below `SMALL_TRAINING_ROWS`, and OpenMP's passive wait policy (a waiting thread sleeps).
And the CPU Python's own garbage collector takes in a long run: `frozen_heap`.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

# Below this many training rows LightGBM gets one thread: its work per split is too small for a
# second thread to pay for the synchronisation, and on a busy machine that costs 10-50x.
SMALL_TRAINING_ROWS = 100_000
# DuckDB's memory limit unless set: its default (80% of RAM) let the features step of a 10M run
# reach 4.7 GB; with a limit DuckDB spills sorts, joins and windows to disk instead.
DEFAULT_DUCKDB_MEMORY_LIMIT = "2GB"
# OpenMP's wait policy for LightGBM unless set (`OMP_WAIT_POLICY`); "default" leaves OpenMP's own.
DEFAULT_OPENMP_WAIT_POLICY = "PASSIVE"

THREADS_VARIABLE = "HEADWATER_THREADS"
DUCKDB_THREADS_VARIABLE = "HEADWATER_DUCKDB_THREADS"
DUCKDB_MEMORY_VARIABLE = "HEADWATER_DUCKDB_MEMORY_LIMIT"
SMALL_ROWS_VARIABLE = "HEADWATER_SMALL_TRAINING_ROWS"
WAIT_POLICY_VARIABLE = "HEADWATER_OPENMP_WAIT_POLICY"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _int_setting(value: int, unset: int, variable: str, default: int) -> int:
    """`value` unless it is `unset`, else $variable, else `default`."""
    if value != unset:
        return value
    raw = os.environ.get(variable, "").strip()
    return int(raw) if raw else default


def threads(value: int = 0) -> int:
    """Threads a step's compute library gets (LightGBM on large sets, Evidently's BLAS): `value`,
    else $HEADWATER_THREADS, else the cores available."""
    return max(1, _int_setting(value, 0, THREADS_VARIABLE, available_cores()))


def duckdb_threads(value: int = 0) -> int:
    """DuckDB's threads: `value`, else $HEADWATER_DUCKDB_THREADS, else `threads()`."""
    return max(1, _int_setting(value, 0, DUCKDB_THREADS_VARIABLE, threads()))


def duckdb_memory_limit(value: str = "") -> str:
    """DuckDB's memory_limit ("2GB", "80%" ...): `value`, else $HEADWATER_DUCKDB_MEMORY_LIMIT,
    else DEFAULT_DUCKDB_MEMORY_LIMIT."""
    variable = os.environ.get(DUCKDB_MEMORY_VARIABLE, "").strip()
    return value or variable or DEFAULT_DUCKDB_MEMORY_LIMIT


def small_training_rows(value: int = -1) -> int:
    """The row count below which LightGBM gets one thread: `value` (>= 0; 0 turns the rule
    off), else $HEADWATER_SMALL_TRAINING_ROWS, else SMALL_TRAINING_ROWS."""
    return _int_setting(value, -1, SMALL_ROWS_VARIABLE, SMALL_TRAINING_ROWS)


def training_threads(rows: int, value: int = 0, small_rows: int = -1) -> int:
    """LightGBM's threads for a fit or prediction over `rows` rows: one below the small-rows
    threshold, else `threads(value)`."""
    return 1 if rows < small_training_rows(small_rows) else threads(value)


def duckdb_settings(threads_value: int = 0, memory_limit: str = "") -> dict[str, str]:
    """The DuckDB settings of a connection, also handed to dbt's profile as variables."""
    return {
        DUCKDB_THREADS_VARIABLE: str(duckdb_threads(threads_value)),
        DUCKDB_MEMORY_VARIABLE: duckdb_memory_limit(memory_limit),
    }


def apply_duckdb_settings(con, threads_value: int = 0, memory_limit: str = "") -> None:
    """SET threads and memory_limit on a DuckDB connection (they hold for its database)."""
    settings = duckdb_settings(threads_value, memory_limit)
    con.execute(f"SET threads = {int(settings[DUCKDB_THREADS_VARIABLE])}")
    con.execute("SET memory_limit = ?", [settings[DUCKDB_MEMORY_VARIABLE]])


def prepare_openmp(policy: str = "") -> None:
    """Set OMP_WAIT_POLICY (`policy`, else $HEADWATER_OPENMP_WAIT_POLICY, else PASSIVE) unless
    the environment sets it already. OpenMP reads it once, when LightGBM's library is loaded:
    call this before the first `import lightgbm` of the process."""
    chosen = policy or os.environ.get(WAIT_POLICY_VARIABLE, "") or DEFAULT_OPENMP_WAIT_POLICY
    if chosen.lower() != "default" and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = chosen.upper()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects alive when the block starts (the imported libraries, the loaded
    Definitions) out of the cyclic garbage collector's full collections until it ends.

    A full collection walks every tracked object, and with Dagster, dbt, MLflow and pandas
    loaded that is a large heap that never becomes garbage: a 120-day run made 20 of them,
    3.7 s of its 71 s (gc.callbacks, docs/benchmarks.md). Objects made inside the block are
    collected as usual. At its end the frozen objects go back to the oldest generation
    (`gc.unfreeze`), so a long-lived process (a test session) keeps nothing it would have
    freed. A no-op inside another frozen block, or when something else froze the heap."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
