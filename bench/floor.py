"""The floor: the platform's work done in one plain Python process, without Dagster or MLflow.

What the platform's full run computes, with the project's own code and parameters and nothing
rewritten, and no orchestration around it:

1. ingest: every landing file of the window loaded into DuckDB with `data_platform.raw.ingest`
   (`load_file`, the same contract checks and quarantine), snapshots from their newest file;
2. SQL: the project's dbt models and tests, all layers (staging, marts, features), in ONE
   `dbt build` invoked in-process through dbt's Python API (`dbtRunner`), with the same
   `--exclude-resource-type unit_test` as the platform's runs. dbt's own cost (parsing the
   project, compiling, running tests) is part of the floor: dbt is how the SQL is written;
3. per model spec: `train.training_set_sql` at the cut-off, `split_windows` / `assign_splits`,
   the Parquet training set, `train` (LightGBM, the spec's parameters), the test-window metrics
   of the model and of the decile baseline (`evaluate`), and the drift reference (the newest
   `reference_days` of the training window, sampled as the model asset samples it);
4. scores: every row of the feature set in the window scored and written to `scores.<model>`;
5. drift: each model's newest scored day against its reference with
   `ml_assets.monitoring.drift`, the
   spec's `sample_rows`, HTML and JSON reports written.

Imports are timed on their own, stage by stage, because they are a large share of a short run.
Only modules that do not import Dagster are used (`contract`, `ingest`, `ml_assets.models.spec`,
`train`, `evaluate`, `drift`); `tests/integration/test_bench_smoke.py` checks that.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

# The model asset's drift reference size (ml_assets.models.assets.REFERENCE_ROWS, which cannot be
# imported here without importing Dagster; the smoke test keeps the two equal).
REFERENCE_ROWS = 20_000


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
        import lightgbm  # noqa: F401
    with stages.time("import/dbt"):
        from dbt.cli.main import dbtRunner  # noqa: F401
    with stages.time("import/evidently"):
        import evidently  # noqa: F401
        from evidently.presets import DataDriftPreset  # noqa: F401
    with stages.time("import/project"):
        import data_platform.raw.ingest  # noqa: F401
        import ml_assets.models.evaluate  # noqa: F401
        import ml_assets.models.train  # noqa: F401
        import ml_assets.monitoring.drift  # noqa: F401


def dbt_project_dir() -> Path:
    """The dbt project (headwater_core.config.DBT_PROJECT_DIR, which imports Dagster)."""
    import data_platform

    return Path(data_platform.__file__).resolve().parents[2] / "dbt_project"


def ingest(con, landing: Path, days: list[str]) -> dict[str, int]:
    """Load the window's landing files under the contract; rows loaded per raw table."""
    from data_platform.raw.contract import load_contracts
    from data_platform.raw.ingest import ensure_raw_tables, load_file
    from data_platform.raw.landing import landing_file_for, newest_snapshot_file

    contracts = load_contracts(dbt_project_dir()).values()
    loaded = {}
    for contract in contracts:
        if contract.snapshot:
            files = [newest_snapshot_file(contract, landing)]
        else:
            files = [(day, landing_file_for(contract, landing, day)) for day in days]
        loaded[contract.qualified_name] = sum(
            load_file(con, contract, path, key, "floor").rows_loaded for key, path in files
        )
    ensure_raw_tables(con, contracts)
    return loaded


def dbt_build(duckdb_path: Path, target: Path) -> int:
    """One `dbt build` of every model and test, in this process; returns the nodes it ran."""
    from dbt.cli.main import dbtRunner

    project = dbt_project_dir()
    target.mkdir(parents=True, exist_ok=True)
    # As dagster-dbt does for each platform invocation: start from the project's partial parse.
    partial = project / "target" / "partial_parse.msgpack"
    if partial.exists():
        shutil.copy(partial, target / "partial_parse.msgpack")
    previous = os.environ.get("HEADWATER_DUCKDB_PATH")
    os.environ["HEADWATER_DUCKDB_PATH"] = str(duckdb_path)
    try:
        result = dbtRunner().invoke(
            [
                "build",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--target-path",
                str(target),
                "--exclude-resource-type",
                "unit_test",
                "--quiet",
            ]
        )
    finally:
        if previous is None:
            os.environ.pop("HEADWATER_DUCKDB_PATH", None)
        else:
            os.environ["HEADWATER_DUCKDB_PATH"] = previous
    if not result.success:
        raise RuntimeError(f"dbt build failed: {result.exception or result.result}")
    return len(result.result)


def train_model(con, spec, folder: Path) -> dict:
    """Training set, model, test-window evaluation and drift reference of one spec."""
    import numpy as np

    from ml_assets.models.evaluate import DecileBaseline, metrics_for
    from ml_assets.models.train import (
        LABEL_COLUMN,
        SPLIT_COLUMN,
        assign_splits,
        predict,
        refit,
        split_windows,
        to_frame,
        train,
        training_set_sql,
        write_training_set,
    )

    ((cutoff,),) = con.sql(f"select max({spec.event_time}) from {spec.feature_set}").fetchall()
    rows = con.sql(
        training_set_sql(spec).replace("$cutoff", "$1"), params=[cutoff]
    ).to_arrow_table()
    last_day = max(rows.column("_event_date").to_pylist())
    table = assign_splits(rows, split_windows(last_day, spec.split))
    write_training_set(table, folder / "training_set.parquet")

    split = table.column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)
    label = table.column(LABEL_COLUMN).to_numpy()
    frame = to_frame(table, spec)
    trained = train(spec, table, frame)
    test, training = split == "test", split == "train"
    baseline_feature = frame[spec.baseline_feature].astype("float64").to_numpy()
    baseline = DecileBaseline.fit(baseline_feature[training], label[training])
    metrics = {
        "challenger": metrics_for(spec, label[test], predict(trained.booster, frame[test])),
        "baseline": metrics_for(spec, label[test], baseline.predict(baseline_feature[test])),
    }

    # The model that serves, as the model asset registers it: refit on every matured day.
    served = refit(spec, table, trained.best_iteration, frame) if spec.split.refit else trained

    # The drift reference, as the model asset logs it: the newest days the served model was
    # fitted on (every window when it is the refit).
    fitted = np.ones(len(split), dtype=bool) if served is not trained else training
    days = table.column("_event_date").to_numpy(zero_copy_only=False)
    fitted_days = days[fitted]
    recent = fitted_days >= max(fitted_days) - timedelta(
        days=spec.monitoring.drift.reference_days - 1
    )
    reference = frame[fitted][recent]
    if len(reference) > REFERENCE_ROWS:
        reference = reference.sample(
            n=REFERENCE_ROWS, random_state=int(spec.lightgbm.get("seed", 0))
        )
    return {
        "booster": served.booster,
        "reference": reference.assign(score=predict(served.booster, reference)),
        "rows": table.num_rows,
        "best_iteration": trained.best_iteration,
        "metrics": metrics,
    }


def score(con, spec, booster, start: str, end_exclusive: str) -> int:
    """Score the window's feature rows into `scores.<model>` (as the scores asset writes them)."""
    import pyarrow as pa

    from ml_assets.models.train import predict, to_frame

    keys = ", ".join(spec.keys)
    rows = con.sql(
        f"select {keys}, {spec.event_time} as event_time, {', '.join(spec.features)} "
        f"from {spec.feature_set} where {spec.score_date} >= $1 and {spec.score_date} < $2 "
        f"order by {keys}",
        params=[start, end_exclusive],
    ).to_arrow_table()
    scores = predict(booster, to_frame(rows, spec)) if rows.num_rows else []
    out = rows.select([*spec.keys, "event_time"]).append_column(
        "score", pa.array(scores, pa.float64())
    )
    con.execute("create schema if not exists scores")
    con.register("new_scores", out)
    con.execute(
        f"create or replace table scores.{spec.name} as "
        "select *, current_timestamp as scored_at from new_scores"
    )
    con.unregister("new_scores")
    return rows.num_rows


def drift(con, spec, reference, reports: Path) -> dict | None:
    """Drift of the model's newest scored day against its reference (None: nothing scored)."""
    from ml_assets.models.train import to_frame
    from ml_assets.monitoring.drift import compute_drift

    ((day,),) = con.sql(f"select cast(max(event_time) as date) from scores.{spec.name}").fetchall()
    if day is None:
        return None
    keys = ", ".join(spec.keys)
    columns = ", ".join(f"f.{c}" for c in spec.features)
    rows = con.sql(
        f"select {columns}, s.score from scores.{spec.name} s "
        f"join {spec.feature_set} f using ({keys}) where cast(s.event_time as date) = $1",
        params=[day],
    ).to_arrow_table()
    current = to_frame(rows, spec).assign(score=rows.column("score").to_numpy())
    result = compute_drift(
        reference,
        current,
        features=spec.features,
        categorical=spec.categorical,
        max_rows=spec.monitoring.drift.sample_rows,
        seed=int(spec.lightgbm.get("seed", 0)),
        html_path=reports / spec.name / f"{day}.html",
        json_path=reports / spec.name / f"{day}.json",
    )
    return {"day": day.isoformat(), "drift_share": result.drift_share, "rows": len(current)}


def run_floor(landing: Path, home: Path, start: str, end: str) -> dict:
    """The whole floor for the day partitions start..end; figures as a JSON-ready dict."""
    stages = Stages()
    _import_all(stages)

    import duckdb

    from ml_assets.models.spec import load_specs

    home.mkdir(parents=True, exist_ok=True)
    duckdb_path = home / "warehouse.duckdb"
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    end_exclusive = (last + timedelta(days=1)).isoformat()

    with stages.time("ingest"):
        con = duckdb.connect(str(duckdb_path))
        loaded = ingest(con, landing, days)
        # dbt opens the file itself: DuckDB lets one connection configuration hold it at a time.
        con.close()
    with stages.time("dbt build"):
        nodes = dbt_build(duckdb_path, home / "dbt_target")

    models, scored, drifts = {}, {}, {}
    con = duckdb.connect(str(duckdb_path))
    try:
        for spec in load_specs():
            with stages.time(f"train/{spec.name}"):
                models[spec.name] = train_model(con, spec, home / "ml" / spec.name)
            with stages.time(f"score/{spec.name}"):
                scored[spec.name] = score(
                    con, spec, models[spec.name]["booster"], start, end_exclusive
                )
            with stages.time(f"drift/{spec.name}"):
                drifts[spec.name] = drift(
                    con, spec, models[spec.name]["reference"], home / "reports"
                )
        counts = {
            t: con.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("raw.transactions", "marts.fct_transactions", "features.transaction_features")
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
        "rows": {**counts, **{f"scores.{name}": n for name, n in scored.items()}},
        "models": {
            name: {k: v for k, v in m.items() if k not in ("booster", "reference")}
            for name, m in models.items()
        },
        "drift": drifts,
        # The floor must not pay for Dagster, even through a project module.
        "dagster_imported": "dagster" in sys.modules,
    }
