"""The floor: the platform's work done in one plain Python process, without Dagster or MLflow.

What the platform's full run computes, through the very functions its assets call, with nothing
rewritten and no orchestration around it:

1. ingest: every landing file of the window, listed by `data_platform.raw.landing.files_to_load`
   (the raw assets' `plan_load`, with a faulty day raised rather than quarantined: the floor's
   files are clean and already settled), loaded with `data_platform.raw.ingest.load_file` (the
   same contract checks and quarantine);
2. SQL: the project's dbt models and tests, all layers (staging, marts, features), in ONE
   `dbt build` invoked in-process through dbt's Python API (`dbtRunner`), with the same
   `--exclude-resource-type unit_test`, `--exclude source:*` (the sources' tests are the weekly
   raw audit's), `--log-level-file none` and `--no-write-json` as the platform's runs. dbt's own
   cost (parsing the project, compiling, running tests) is part of the floor: dbt is how the SQL
   is written. The feature models are incremental (macros/feature_window.sql); on the floor's
   new warehouse they build in full, the very SQL the platform's first run of the features
   asset compiles;
3. online: each online store the `online/<feature_set>` assets write, as their first run
   writes it (`online_stores`: the feature set's SQL compiled by dbt against an empty scratch
   file, `ml_assets.online.plan.build_plan`, `ml_assets.online.snapshot.write_snapshot` into a
   SQLite store);
4. per model spec, as the training-set, model and evaluation assets do it:
   `ml_assets.models.training_set` (`matured_rows`, `build_training_set`: the train window
   sampled by the spec's `sampling` rule, if it has one, as the asset samples it), `train.fit` (the
   held-out model and the served refit), the evaluation asset's gate on a first model (the
   test-window metrics of the model and of the decile baseline and their paired bootstrap,
   `evaluate.judge_on_test_window`) and the drift reference
   (`reference.drift_reference`);
5. scores: the window scored into `scores.<model>` with the scores asset's
   `ml_assets.scores.scoring.score_window`;
6. drift: each model's newest scored day measured and written with the drift asset's
   `ml_assets.monitoring.measure` functions (`read_scored_day`, `measure_drift`, `write_drift`),
   HTML and JSON reports written.

What the floor leaves out is what orchestration adds: Dagster's runs, events and checks, and
MLflow's tracking and registry (the platform logs the same model and reference there; the floor
keeps them in memory). Imports are timed on their own, stage by stage, because they are a large
share of a short run. No module it uses imports Dagster (`headwater_core.config`, the raw
ingestion, `ml_assets.models`' plain modules, `scores.scoring`, `monitoring.measure`): an import
contract checks it, and `tests/integration/test_bench_smoke.py` checks that Dagster was not
loaded.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from headwater_core.compute import (
    apply_duckdb_settings,
    duckdb_settings,
    frozen_heap,
    prepare_openmp,
    threads,
)
from headwater_core.config import dbt_project_dir, environ

# The model version the floor's scores and drift rows carry (the platform writes the registry's).
FLOOR_VERSION = "floor"
# The tables whose rows the floor reports, to compare its work with the platform's.
COUNTED_TABLES = ("raw.transactions", "marts.fct_transactions", "features.transaction_features")


class Stages:
    """Wall time of each named stage, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def _import_all(stages: Stages) -> None:
    """The libraries the floor uses, one stage each (later imports reuse earlier ones)."""
    with stages.time("import/duckdb+pyarrow"):
        import duckdb  # noqa: F401
        import pyarrow  # noqa: F401
    with stages.time("import/pandas"):
        import pandas  # noqa: F401
    with stages.time("import/lightgbm"):
        # The platform's OpenMP wait policy, which OpenMP reads when LightGBM is loaded.
        prepare_openmp()
        import lightgbm  # noqa: F401
    with stages.time("import/dbt"):
        from dbt.cli.main import dbtRunner  # noqa: F401
    with stages.time("import/evidently"):
        import evidently  # noqa: F401
        from evidently.metrics import ValueDrift  # noqa: F401

        import ml_assets.monitoring.drift_count  # noqa: F401  (Evidently's metric types)
    with stages.time("import/project"):
        import data_platform.raw.ingest  # noqa: F401
        import ml_assets.models.evaluate  # noqa: F401
        import ml_assets.models.reference  # noqa: F401
        import ml_assets.models.training_set  # noqa: F401
        import ml_assets.monitoring.drift  # noqa: F401
        import ml_assets.monitoring.measure  # noqa: F401
        import ml_assets.online.snapshot  # noqa: F401
        import ml_assets.scores.scoring  # noqa: F401


def ingest(con, landing: Path, days: list[str]) -> dict[str, int]:
    """Load the window's landing files under the contract, file by file as the raw assets do;
    rows loaded per raw table."""
    from data_platform.raw.contract import load_contracts
    from data_platform.raw.ingest import ensure_raw_tables, load_file
    from data_platform.raw.landing import files_to_load

    contracts = load_contracts(dbt_project_dir()).values()
    loaded = {}
    for contract in contracts:
        files = files_to_load(contract, landing, days)
        loaded[contract.qualified_name] = sum(
            load_file(con, contract, path, key, "floor").rows_loaded for key, path in files
        )
    ensure_raw_tables(con, contracts)
    return loaded


def _dbt(args: list[str], duckdb_path: Path, target: Path, manifest=None):
    """One dbt invocation in this process, as the platform's (`headwater_core.dbt.in_process`):
    the project's partial parse, or the `manifest` already parsed, the DuckDB settings the
    Warehouse resource gives dbt, no log output; raises on failure."""
    from dbt.cli.main import dbtRunner

    project = dbt_project_dir()
    target.mkdir(parents=True, exist_ok=True)
    # As dagster-dbt does for each platform invocation: start from the project's partial parse.
    partial = project / "target" / "partial_parse.msgpack"
    if partial.exists() and manifest is None:
        shutil.copy(partial, target / "partial_parse.msgpack")
    # DuckDB's threads and memory limit as the platform gives dbt (the Warehouse resource's rule)
    with environ({"HEADWATER_DUCKDB_PATH": str(duckdb_path), **duckdb_settings()}):
        result = dbtRunner(manifest=manifest).invoke(
            [
                *args,
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--target-path",
                str(target),
                "--log-level",
                "none",
                "--log-level-file",
                "none",
            ]
        )
    if not result.success:
        raise RuntimeError(f"dbt {args[0]} failed: {result.exception or result.result}")
    return result


def dbt_build(duckdb_path: Path, target: Path) -> tuple[int, object]:
    """The project parsed, then one `dbt build` of every model and test, in this process; the
    nodes it ran and the parsed project (which the platform's process, too, parses once and
    passes to every later invocation)."""
    manifest = _dbt(["parse"], duckdb_path, target).result
    args = ["build", "--exclude-resource-type", "unit_test", "--exclude", "source:*"]
    return len(_dbt([*args, "--no-write-json"], duckdb_path, target, manifest).result), manifest


def online_stores(con, home: Path, warehouse_file: str, manifest) -> dict[str, int]:
    """Each online store the platform's `online/<feature_set>` assets write, as their first run
    writes it: the feature set and its parents compiled against an empty scratch file named as
    the warehouse (`ml_assets.online.assets.compiled_manifest`), the plan built and the
    snapshot written to `<home>/online.sqlite`; history rows per feature set."""
    from ml_assets.models.spec import load_specs
    from ml_assets.online.plan import HISTORY, build_plan
    from ml_assets.online.snapshot import write_snapshot
    from ml_assets.online.store import open_store

    first = {}
    for spec in load_specs():
        if spec.feature_set in HISTORY:
            first.setdefault(spec.feature_set, spec)
    store, rows = open_store(str(home / "online.sqlite"), "hw:"), {}
    for feature_set, spec in first.items():
        model = feature_set.split(".")[-1]
        with tempfile.TemporaryDirectory(prefix="hw-floor-online-") as scratch:
            target = Path(scratch) / "target"
            _dbt(
                ["compile", "--select", f"+{model}"],
                Path(scratch) / warehouse_file,
                target,
                manifest,
            )
            compiled = json.loads((target / "manifest.json").read_text())
        plan = build_plan(compiled, feature_set, list(spec.keys), spec.event_time)
        written = write_snapshot(con, store, plan, list(spec.keys), spec.event_time)
        rows[feature_set] = written.rows
    return rows


def train_model(con, spec, folder: Path) -> dict:
    """Training set, model, test-window evaluation and drift reference of one spec, through the
    functions the training-set, model and evaluation assets call."""
    from ml_assets.models.evaluate import judge_on_test_window
    from ml_assets.models.reference import drift_reference
    from ml_assets.models.train import event_days, fit
    from ml_assets.models.training_set import build_training_set, matured_rows

    cutoff, rows = matured_rows(con, spec)
    built = build_training_set(spec, cutoff, rows, folder / "training_set.parquet")
    table = built.table
    # The held-out model and, as the model asset registers it, the served refit.
    fitted = fit(spec, table)
    # The evaluation asset's gate on a first model: the held-out model and the decile baseline on
    # the test window, and the paired bootstrap of the improvement over the baseline.
    metrics, _, decision = judge_on_test_window(spec, table, fitted.trained.booster)
    return {
        "booster": fitted.served.booster,
        "importance": fitted.served.feature_importance,
        "reference": drift_reference(spec, fitted, event_days(table)).frame,
        "rows": table.num_rows,
        # the spec's sampling rule's rate and train rows before / after (None: no rule)
        "sample": built.sample.as_metadata() if built.sample else None,
        "best_iteration": fitted.trained.best_iteration,
        "metrics": {who: values for who, values in metrics.items() if values is not None},
        "gate": decision.reason,
    }


def score(con, spec, booster, start: str, end_exclusive: str) -> int:
    """Score the window's feature rows into `scores.<model>` with the scores asset's function."""
    from ml_assets.scores.scoring import score_window

    return score_window(con, spec, booster, FLOOR_VERSION, (start, end_exclusive)).rows


def drift(con, spec, model: dict, reports: Path) -> dict | None:
    """Drift of the model's newest scored day against its reference, measured and written with
    the drift asset's functions (None: nothing scored)."""
    from headwater_core.names import scores_table
    from ml_assets.monitoring.measure import (
        measure_drift,
        read_scored_day,
        scored_frame,
        write_drift,
    )

    table = scores_table(spec.name)
    ((day,),) = con.sql(f"select cast(max(event_time) as date) from {table}").fetchall()
    if day is None:
        return None
    current = scored_frame(read_scored_day(con, spec, day.isoformat()), spec)
    measured = measure_drift(
        spec,
        model["reference"],
        current,
        model["importance"],
        html_path=reports / spec.name / f"{day}.html",
        json_path=reports / spec.name / f"{day}.json",
    )
    write_drift(
        con, spec.name, day.isoformat(), FLOOR_VERSION, measured.result, model["importance"]
    )
    return {"day": day.isoformat(), "drift_share": measured.share, "rows": len(current)}


def run_floor(landing: Path, home: Path, start: str, end: str) -> dict:
    """The whole floor for the day partitions start..end; figures as a JSON-ready dict."""
    stages = Stages()
    _import_all(stages)

    import duckdb
    from threadpoolctl import threadpool_limits

    from ml_assets.models.spec import load_specs

    # As the platform's runs (`headless.materialize_range`): what is loaded stays out of
    # the full garbage collections.
    with frozen_heap():
        home.mkdir(parents=True, exist_ok=True)
        duckdb_path = home / "warehouse.duckdb"
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        end_exclusive = (last + timedelta(days=1)).isoformat()

        with stages.time("ingest"):
            con = duckdb.connect(str(duckdb_path))
            apply_duckdb_settings(con)
            loaded = ingest(con, landing, days)
            # dbt opens the file itself: DuckDB lets one connection configuration hold it at a time.
            con.close()
        with stages.time("dbt build"):
            nodes, parsed = dbt_build(duckdb_path, home / "dbt_target")

        models, scored, drifts = {}, {}, {}
        con = duckdb.connect(str(duckdb_path))
        apply_duckdb_settings(con)
        try:
            with stages.time("online"):
                online = online_stores(con, home, duckdb_path.name, parsed)
            for spec in load_specs():
                with stages.time(f"train/{spec.name}"):
                    models[spec.name] = train_model(con, spec, home / "ml" / spec.name)
                with stages.time(f"score/{spec.name}"):
                    scored[spec.name] = score(
                        con, spec, models[spec.name]["booster"], start, end_exclusive
                    )
                with stages.time(f"drift/{spec.name}"), threadpool_limits(limits=threads()):
                    drifts[spec.name] = drift(con, spec, models[spec.name], home / "reports")
            counts = {
                t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in COUNTED_TABLES
            }
        finally:
            con.close()

    imports = sum(s for name, s in stages.seconds.items() if name.startswith("import/"))
    return {
        "stages": stages.seconds,
        "import_seconds": imports,
        "compute_seconds": sum(stages.seconds.values()) - imports,
        "loaded": loaded,
        "dbt_nodes": nodes,
        "online_rows": online,
        "rows": {**counts, **{f"scores.{name}": n for name, n in scored.items()}},
        "models": {
            name: {k: v for k, v in m.items() if k not in ("booster", "reference", "importance")}
            for name, m in models.items()
        },
        "drift": drifts,
        # The floor must not pay for Dagster, even through a project module.
        "dagster_imported": "dagster" in sys.modules,
    }
