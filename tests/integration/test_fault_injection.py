"""Fault injection: a run killed with SIGKILL inside each kind of asset (raw load, dbt, training,
registration, scoring, drift), then the next run on the same state folder, which must complete
and leave every warehouse table equal to a clean run's (row count and an order-independent hash
per table) with a completely registered champion for every model.

Each run is `headwater materialize` over a small demo world followed by the drift of its last
day (tests/fixtures/fault_runner.py, one process in its own session, on the committed embedded
instance config). The kill is real: the runner wraps one platform function so that, at the
chosen point, the process sends itself SIGKILL with the warehouse, the MLflow store and the
Dagster instance open. Nothing of the platform is mocked.

The clean run and the six killed-then-next pairs are independent state folders: they run two
at a time, so a figure in the printed table is measured beside one other run.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pytest

from fraud_demo.generator import GeneratorConfig, generate
from tests.processes import stop_process_group

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).resolve().parents[1] / "fixtures" / "fault_runner.py"
# The smallest world found that trains, gates and scores both specs: the spend model needs
# three Mondays whose 30-day label has matured (about 62 days), the fraud model a week of
# matured labels (chargebacks within 6 days, labels final after 7).
WORLD = GeneratorConfig(
    seed=11,
    start_date=date(2025, 1, 1),
    days=70,
    transactions=14_000,
    fraud_rate=0.02,
    max_report_delay_days=6,
)
FIRST, LAST = "2025-01-01", "2025-03-11"
MATURITY_DAYS = "7"
KILL_POINTS = ("raw", "dbt", "training", "registration", "scoring", "drift")
RUN_TIMEOUT = 1800
PARALLEL_RUNS = 2

# Columns left out of a table's hash: they differ between two clean runs of the same data.
EXCLUDED_COLUMNS = {
    "_loaded_at": "raw.*: when the row was loaded",
    "loaded_at": "staging views: raw's _loaded_at renamed",
    "quarantined_at": "raw.quarantine: when the row was refused",
    "run_id": "raw.quarantine: the Dagster run that refused it",
    "scored_at": "scores.*: when the row was scored",
    "computed_at": "monitoring.*: when the day was measured",
    "recorded_at": "raw._partition_status: when a partition's outcome was recorded",
    # The registry's version number: the registration kill leaves a half-registered version 1
    # behind, so the next run's champion is version 2 of the same model. Every score is
    # checked to come from the champion instead (`test_every_score_comes_from_the_champion`).
    "model_version": "scores.*, monitoring.*: the registry's version number",
}
# Paths in the state folder (a raw row's _source_file, a quarantined file) are compared with
# the folder's own path removed: each run has its own folder.
#
# Everything else is compared bit for bit (LightGBM is deterministic for a seed: the scores of
# two runs are identical), but for the drift scores of categorical features: Evidently sums
# the Jensen-Shannon distance over the categories in the order of a Python set of strings,
# which changes with each process's hash seed, so two clean runs differ in the last bits
# (0.04759256771670636 against ...722). The doubles of these schemas are compared as float32
# (7 significant digits).
APPROXIMATE_SCHEMAS = ("monitoring",)


@dataclass
class Outcome:
    """One state folder's story: the killed run (if any) and the run after it."""

    point: str
    killed_returncode: int | None = None
    killed_at: dict = field(default_factory=dict)
    next_returncode: int | None = None
    next_seconds: float = 0.0
    output: str = ""
    fingerprint: dict[str, tuple[int, int]] = field(default_factory=dict)
    home: str = ""


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "DAGSTER_"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["HEADWATER_LABEL_MATURITY_DAYS"] = MATURITY_DAYS
    return env


class Runs:
    """The runner's processes, each in its own session, all stopped at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []
        self.lock = threading.Lock()

    def run(self, home: Path, *kill: str) -> tuple[int, str, float]:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(home), FIRST, LAST, *kill],
            env=_environment(),
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        with self.lock:
            self.started.append(proc)
        output, _ = proc.communicate(timeout=RUN_TIMEOUT)
        return proc.returncode, output.decode(errors="replace"), time.monotonic() - started

    def stop_all(self) -> None:
        for proc in self.started:
            stop_process_group(proc)


def _home(tmp: Path, world: Path, name: str) -> Path:
    home = tmp / name
    shutil.copytree(world, home / "landing")
    return home


def _sql_value(schema: str, column: str, data_type: str, home: Path) -> str:
    quoted = '"' + column.replace('"', '""') + '"'
    if data_type == "VARCHAR":
        prefix = f"{home.resolve()}/".replace("'", "''")
        return f"replace({quoted}, '{prefix}', '')"
    if data_type == "DOUBLE" and schema in APPROXIMATE_SCHEMAS:
        return f"cast({quoted} as float)"
    return quoted


def fingerprint(home: Path) -> dict[str, tuple[int, int]]:
    """Every table and view of the warehouse: its row count and the sum of its rows' hashes
    (order-independent, and a duplicated row counts twice), EXCLUDED_COLUMNS left out and the
    state folder's path taken out of strings."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables order by all"
        ).fetchall()
        prints = {}
        for schema, table in tables:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
            values = [
                _sql_value(schema, c, t, home) for c, t in columns if c not in EXCLUDED_COLUMNS
            ]
            ((count, digest),) = con.execute(
                f"select count(*), coalesce(sum(hash({', '.join(values)})), 0) "
                f'from "{schema}"."{table}"'
            ).fetchall()
            prints[f"{schema}.{table}"] = (int(count), int(digest))
        return prints
    finally:
        con.close()


def _clean(runs: Runs, tmp: Path, world: Path) -> Outcome:
    home = _home(tmp, world, "clean")
    outcome = Outcome("clean", home=str(home))
    outcome.next_returncode, outcome.output, outcome.next_seconds = runs.run(home)
    if outcome.next_returncode == 0:
        outcome.fingerprint = fingerprint(home)
    return outcome


def _killed_then_next(runs: Runs, tmp: Path, world: Path, point: str) -> Outcome:
    home = _home(tmp, world, point)
    marker = tmp / f"{point}.killed.json"
    outcome = Outcome(point, home=str(home))
    outcome.killed_returncode, killed_output, _ = runs.run(
        home, "--kill", point, "--marker", str(marker)
    )
    if marker.exists():
        outcome.killed_at = json.loads(marker.read_text())
    if outcome.killed_returncode != -signal.SIGKILL:
        outcome.output = killed_output
        return outcome
    outcome.next_returncode, outcome.output, outcome.next_seconds = runs.run(home)
    if outcome.next_returncode == 0:
        outcome.fingerprint = fingerprint(home)
    return outcome


def _report(outcomes: dict[str, Outcome], path: Path) -> str:
    lines = [
        "| kill point | killed after s | where | next run s |",
        "|---|---:|---|---:|",
        *(
            f"| {o.point} | {o.killed_at.get('seconds', '')} | {o.killed_at.get('detail', '')} "
            f"| {o.next_seconds:.1f} |"
            for o in outcomes.values()
        ),
    ]
    path.write_text(
        json.dumps(
            [
                {k: v for k, v in asdict(o).items() if k not in ("output", "fingerprint")}
                for o in outcomes.values()
            ],
            indent=2,
        )
    )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """The clean run and, per kill point, a killed run and the next one, two at a time."""
    tmp = tmp_path_factory.mktemp("faults")
    world = tmp / "world"
    generate(WORLD, world, progress=False)
    runs = Runs()
    try:
        with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
            # the longest first: the clean run, then the kills latest in the graph
            clean = pool.submit(_clean, runs, tmp, world)
            pairs = {
                p: pool.submit(_killed_then_next, runs, tmp, world, p)
                for p in reversed(KILL_POINTS)
            }
            results = {"clean": clean.result(), **{p: pairs[p].result() for p in KILL_POINTS}}
    finally:
        runs.stop_all()
    table = _report(results, tmp / "fault_injection.json")
    print(f"\nfault injection ({tmp / 'fault_injection.json'}):\n{table}")
    return results


def _champions(home: Path) -> dict[str, str]:
    """Each spec's champion version, after checking its registration is complete."""
    from ml_assets.models.registry import require_complete
    from ml_assets.models.spec import load_specs
    from ml_assets.models.tracking import CHAMPION, MlflowTracking

    tracking = MlflowTracking(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    champions = {}
    for spec in load_specs():
        version = tracking.version_by_alias(spec.registered_model_name, CHAMPION)
        assert version is not None, f"{home.name}: {spec.name} has no champion"
        require_complete(tracking, spec.registered_model_name, version)
        champions[spec.name] = version.version
    return champions


def test_the_clean_run_trains_scores_and_measures_both_models(outcomes):
    clean = outcomes["clean"]
    assert clean.next_returncode == 0, clean.output[-5000:]
    prints = clean.fingerprint
    for name in _champions(Path(clean.home)):
        assert prints[f"scores.{name}"][0] > 0, f"{name} scored nothing"
    assert prints["monitoring.drift"][0] > 0, "the last day's drift was not measured"
    assert prints["raw.transactions"][0] == WORLD.transactions


def test_every_excluded_column_exists(outcomes):
    """The exclusion list names columns the warehouse has (it does not outlive them)."""
    con = duckdb.connect(str(Path(outcomes["clean"].home) / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("select column_name from information_schema.columns").fetchall()
        columns = {column for (column,) in rows}
    finally:
        con.close()
    assert set(EXCLUDED_COLUMNS) <= columns, set(EXCLUDED_COLUMNS) - columns


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_inside_an_asset_is_healed_by_the_next_run(outcomes, point):
    outcome, clean = outcomes[point], outcomes["clean"]
    assert clean.next_returncode == 0, "the clean run failed: see its own test"
    assert outcome.killed_at.get("point") == point, (
        f"the run was not killed at {point} (exit {outcome.killed_returncode}):\n"
        + outcome.output[-5000:]
    )
    assert outcome.killed_returncode == -signal.SIGKILL
    assert outcome.next_returncode == 0, (
        f"the run after the kill at {point} failed:\n" + outcome.output[-5000:]
    )
    differing = {
        table: (outcome.fingerprint.get(table), clean.fingerprint.get(table))
        for table in sorted(set(outcome.fingerprint) | set(clean.fingerprint))
        if outcome.fingerprint.get(table) != clean.fingerprint.get(table)
    }
    assert not differing, f"tables differ from the clean run's (after, clean): {differing}"
    _champions(Path(outcome.home))


@pytest.mark.parametrize("point", ("clean", *KILL_POINTS))
def test_every_score_comes_from_the_champion(outcomes, point):
    outcome = outcomes[point]
    if outcome.next_returncode != 0:
        pytest.fail(f"{point}: the run did not complete (see the test above)")
    home = Path(outcome.home)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        for name, version in _champions(home).items():
            versions = con.execute(f"select distinct model_version from scores.{name}").fetchall()
            assert versions == [(version,)], (name, versions, version)
    finally:
        con.close()
