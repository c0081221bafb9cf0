"""The five assets every model spec gets, in lineage order.

    models/<name>/training_set   matured rows of the feature set, time-split, as Parquet
    models/<name>/model          LightGBM fitted on the train window (the held-out model), then
                                 refit on all windows (the served model); tracked in MLflow,
                                 registered as challenger
    models/<name>/evaluation     challenger vs champion vs baseline on the test window (held-out
                                 models); its blocking check is the promotion gate
    models/<name>/champion       the `champion` alias moved to the challenger (gate passed only)
    scores/<name>                daily scores from the champion, written to DuckDB

The bodies are thin: the logic is in `train`, `evaluate` and `registry`.
"""

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import dagster as dg

from headwater_core.freshness import freshness_policy
from headwater_core.metadata import markdown_preview
from headwater_core.names import (
    DUCKDB_POOL,
    GATE_CHECK,
    HOLDOUT_ARTIFACT,
    table_key,
)
from headwater_core.partitions import DAILY_PARTITIONS
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import (
    champion_condition,
    follows_training,
    retrain_condition,
    scores_condition,
)
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import (
    CHALLENGER,
    CHAMPION,
    MlflowTracking,
    VersionRef,
    training_dataset,
)


def _metrics_table(rows: dict[str, dict[str, float] | None], metrics: tuple[str, ...]) -> str:
    header = "| | " + " | ".join(metrics) + " |\n|---|" + "---:|" * len(metrics) + "\n"
    lines = []
    for who, values in rows.items():
        cells = [f"{values[m]:.4f}" if values else "—" for m in metrics]
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    return header + "\n".join(lines)


def build_model_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    name = spec.name
    training_set_key = dg.AssetKey(["models", name, "training_set"])
    model_key = dg.AssetKey(["models", name, "model"])
    evaluation_key = dg.AssetKey(["models", name, "evaluation"])
    champion_key = dg.AssetKey(["models", name, "champion"])
    scores_key = dg.AssetKey(["scores", name])
    # The spec is the model's code: a change to it is a new code version in the UI and on the
    # MLflow run.
    code_version = hashlib.sha256(Path(spec.source).read_bytes()).hexdigest()[:12]
    common = {"group_name": "models", "owners": [spec.owner], "code_version": code_version}
    spec_metadata = {"model_spec": dg.MetadataValue.path(spec.source)}

    @dg.asset(
        key=training_set_key,
        deps=[dg.AssetKey(table_key(spec.feature_set)), dg.AssetKey(table_key(spec.label.table))],
        description=(
            f"Training set of `{name}`: rows of `{spec.feature_set}` whose label has matured by "
            "the cut-off (the newest event in the feature set), with the label as known then, "
            "split by time into train / validation / test."
        ),
        kinds={"python", "duckdb", "parquet"},
        pool=DUCKDB_POOL,
        metadata=spec_metadata,
        automation_condition=retrain_condition(spec),
        **common,
    )
    def training_set(
        context: dg.AssetExecutionContext, warehouse: Warehouse, artifacts: ModelArtifacts
    ) -> dg.MaterializeResult:
        from ml_assets.models.train import (
            SPLIT_COLUMN,
            assign_splits,
            split_windows,
            training_set_sql,
            write_training_set,
        )

        with warehouse.connect(read_only=True) as con:
            ((cutoff,),) = con.sql(
                f"select max({spec.event_time}) from {spec.feature_set}"
            ).fetchall()
            if cutoff is None:
                raise ValueError(f"{spec.feature_set} is empty: nothing to train {name} on")
            sql = training_set_sql(spec).replace("$cutoff", "$1")
            rows = con.sql(sql, params=[cutoff]).to_arrow_table()
        if rows.num_rows == 0:
            raise ValueError(
                f"{name}: no row of {spec.feature_set} has a matured label by {cutoff}"
            )
        last_day = max(rows.column("_event_date").to_pylist())
        windows = split_windows(last_day, spec.split)
        table = assign_splits(rows, windows)
        path = artifacts.folder(name) / "training_set.parquet"
        version = write_training_set(table, path)
        counts = {s: 0 for s in ("train", "validation", "test")}
        for s in table.column(SPLIT_COLUMN).to_pylist():
            counts[s] += 1
        label = table.column("_label").to_numpy()
        return dg.MaterializeResult(
            data_version=dg.DataVersion(version),
            metadata={
                "cutoff": str(cutoff),
                "rows_train": counts["train"],
                "rows_validation": counts["validation"],
                "rows_test": counts["test"],
                "label_mean": float(label.mean()),
                "data_version": version,
                "path": dg.MetadataValue.path(str(path)),
                "windows": dg.MetadataValue.json(windows.as_dict()),
                "dagster/row_count": table.num_rows,
            },
        )

    @dg.asset(
        key=model_key,
        deps=[training_set_key],
        description=(
            f"{spec.description} Trained with LightGBM on the training window, early-stopped "
            "on the validation window and measured on the test window (the held-out model); "
            "the version registered with alias `challenger` is the same recipe refit on all "
            "three windows, so the newest matured days train the model that serves. Tracked "
            "in MLflow with its held-out twin."
        ),
        kinds={"python", "lightgbm", "mlflow"},
        metadata=spec_metadata,
        freshness_policy=freshness_policy(spec.freshness),
        automation_condition=follows_training(),
        **common,
    )
    def model(
        context: dg.AssetExecutionContext,
        artifacts: ModelArtifacts,
        mlflow_tracking: MlflowTracking,
    ) -> dg.MaterializeResult:
        import pyarrow.parquet as pq

        from ml_assets.models.evaluate import metrics_for
        from ml_assets.models.train import (
            LABEL_COLUMN,
            SPLIT_COLUMN,
            predict,
            refit,
            to_frame,
            train,
        )

        path = artifacts.folder(name) / "training_set.parquet"
        table = pq.read_table(path)
        data_version = _latest_data_version(context, training_set_key)
        # The held-out model: trained on the train window, judged on the test window.
        split = table.column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)
        frame = to_frame(table, spec)
        trained = train(spec, table, frame)
        label = table.column(LABEL_COLUMN).to_numpy()
        test_rows = split == "test"
        test_metrics = metrics_for(
            spec, label[test_rows], predict(trained.booster, frame[test_rows])
        )

        # The model that serves: the same recipe refit on every matured day (see `refit`).
        served = refit(spec, table, trained.best_iteration, frame) if spec.split.refit else trained

        version, run_id, experiment_id = _log_to_mlflow(
            context,
            spec,
            mlflow_tracking,
            trained,
            served,
            frame,
            table,
            path,
            data_version,
            test_metrics,
        )
        top = sorted(served.feature_importance.items(), key=lambda kv: -kv[1])[:10]
        return dg.MaterializeResult(
            metadata={
                "registered_model": spec.registered_model_name,
                "model_version": version,
                "alias": CHALLENGER,
                "mlflow_run_id": run_id,
                "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_link(experiment_id, run_id)),
                "best_iteration": trained.best_iteration,
                "validation_metric": trained.validation_metric,
                "refit_on_all_windows": served is not trained,
                **{f"test_{k}": v for k, v in test_metrics.items()},
                "top_features": dg.MetadataValue.md(
                    markdown_preview(
                        ["feature", "share of gain"], [(f, f"{g:.3f}") for f, g in top], limit=10
                    )
                ),
                "training_data_version": data_version,
            }
        )

    @dg.asset(
        key=evaluation_key,
        deps=[model_key],
        description=(
            f"`{name}` challenger, champion and a one-feature baseline "
            f"(`{spec.baseline_feature}` by decile) on the same test window, each model by its "
            "held-out twin (trained before the window began). The check "
            f"`{GATE_CHECK}` is the promotion gate: {spec.promotion.metric} must beat the "
            f"champion by {spec.promotion.min_improvement}."
        ),
        kinds={"python", "mlflow"},
        metadata=spec_metadata,
        check_specs=[
            dg.AssetCheckSpec(
                GATE_CHECK,
                asset=evaluation_key,
                blocking=True,
                description=(
                    "Passes when the challenger beats the champion by the spec's margin. Fails "
                    "with WARN when it does not (the champion stays), with ERROR when it does "
                    "not even beat the baseline (the run stops)."
                ),
            )
        ],
        automation_condition=follows_training(),
        **common,
    )
    def evaluation(
        context: dg.AssetExecutionContext,
        artifacts: ModelArtifacts,
        mlflow_tracking: MlflowTracking,
    ):
        from ml_assets.models.registry import record

        result = _evaluate(spec, artifacts, mlflow_tracking)
        decision = result["decision"]
        challenger_version = result["challenger_version"]
        record(
            mlflow_tracking,
            spec.registered_model_name,
            challenger_version,
            {
                "headwater.gate": "passed" if decision.promote else "refused",
                "headwater.gate_reason": decision.reason,
                "headwater.gate_champion_version": result["champion_version"] or "",
                "headwater.gate_metrics": json.dumps(result["metrics"], sort_keys=True),
            },
        )
        (artifacts.folder(name) / "evaluation.json").write_text(
            json.dumps({**result, "decision": decision.__dict__}, indent=2, default=str)
        )
        numeric = {
            f"{who}_{metric}": value
            for who, values in result["metrics"].items()
            if values
            for metric, value in values.items()
        }
        yield dg.MaterializeResult(
            metadata={
                "metrics": dg.MetadataValue.md(_metrics_table(result["metrics"], spec.metrics)),
                "challenger_version": challenger_version,
                "champion_version": result["champion_version"] or "none",
                "decision": decision.reason,
                **numeric,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=GATE_CHECK,
                    passed=decision.promote,
                    # A challenger worse than the baseline is broken: ERROR blocks the rest of
                    # the run. One merely not better than the champion is an expected refusal:
                    # WARN lets the run go on, the champion asset keeps the champion, and scores
                    # keep coming from it.
                    severity=(
                        dg.AssetCheckSeverity.ERROR
                        if decision.broken
                        else dg.AssetCheckSeverity.WARN
                    ),
                    description=decision.reason,
                    metadata={
                        "metric": decision.metric,
                        "challenger": decision.challenger,
                        "champion": decision.champion if decision.champion is not None else "none",
                        "baseline": decision.baseline,
                    },
                )
            ],
        )

    @dg.asset(
        key=champion_key,
        deps=[evaluation_key],
        description=(
            f"The `champion` alias of `{spec.registered_model_name}`, moved to the challenger "
            "only when the evaluation's gate passed. Scores always come from the champion."
        ),
        kinds={"python", "mlflow"},
        metadata=spec_metadata,
        automation_condition=champion_condition(),
        # Materialised only when the alias moves: a refused challenger leaves the champion, and
        # everything downstream of it, as it was.
        output_required=False,
        **common,
    )
    def champion(context: dg.AssetExecutionContext, mlflow_tracking: MlflowTracking):
        from ml_assets.models.registry import move_champion

        challenger = mlflow_tracking.version_by_alias(spec.registered_model_name, CHALLENGER)
        if challenger is None:
            raise ValueError(f"{spec.registered_model_name} has no challenger to promote")
        gate = challenger.tags.get("headwater.gate")
        reason = challenger.tags.get("headwater.gate_reason", "")
        current = mlflow_tracking.version_by_alias(spec.registered_model_name, CHAMPION)
        if gate == "refused":
            # The gate said no (this asset also runs on its own, so it checks for itself).
            kept = current.version if current else "none"
            context.log.info(
                f"champion stays {kept}: version {challenger.version} refused ({reason})"
            )
            return
        if gate != "passed":
            raise ValueError(
                f"version {challenger.version} of {spec.registered_model_name} has not been "
                f"evaluated: materialise models/{name}/evaluation first"
            )
        previous = move_champion(
            mlflow_tracking,
            spec.registered_model_name,
            challenger.version,
            "promoted",
            reason,
        )
        context.log.info(f"champion: version {previous or 'none'} -> {challenger.version}")
        yield dg.MaterializeResult(
            metadata={
                "champion_version": challenger.version,
                "promoted": True,
                "previous_champion_version": previous or "none",
                "reason": reason,
            }
        )

    @dg.asset(
        key=scores_key,
        deps=[champion_key, dg.AssetKey(table_key(spec.feature_set))],
        group_name="scores",
        owners=[spec.owner],
        description=(
            f"Daily `{name}` scores in `scores.{name}`, one row per row of `{spec.feature_set}` "
            "that day, from the champion, with the model version on every row."
        ),
        partitions_def=DAILY_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"python", "duckdb", "lightgbm"},
        pool=DUCKDB_POOL,
        metadata=spec_metadata,
        output_required=False,
        automation_condition=scores_condition(champion_key),
    )
    def scores(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_tracking: MlflowTracking
    ):
        champion_version = mlflow_tracking.version_by_alias(spec.registered_model_name, CHAMPION)
        if champion_version is None:
            context.log.warning(
                f"no champion for {spec.registered_model_name} yet: nothing scored. Materialise "
                f"models/{name}/champion once a challenger has passed the gate."
            )
            return
        start, end = context.partition_time_window
        window = (start.date().isoformat(), end.date().isoformat())
        scored = _score(spec, warehouse, mlflow_tracking, champion_version.version, window)
        yield dg.MaterializeResult(
            metadata={
                "model_version": champion_version.version,
                "dagster/partition_row_count": scored["rows"],
                "dagster/row_count": scored["total"],
                "mean_score": scored["mean"],
                "preview": dg.MetadataValue.md(scored["preview"]),
                **(
                    {"label_lag_days": int(scored["label_lag_days"])}
                    if scored["label_lag_days"] is not None
                    else {}
                ),
            }
        )

    return [training_set, model, evaluation, champion, scores]


def _latest_data_version(context: dg.AssetExecutionContext, key: dg.AssetKey) -> str:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return ""
    value = event.asset_materialization.metadata.get("data_version")
    return str(value.value) if value is not None else ""


def _log_to_mlflow(
    context, spec, tracking, trained, served, frame, table, path, data_version, metrics
):
    """One MLflow run: params, metrics, plot, lineage, the served model and its held-out twin;
    the new version is the challenger.

    `trained` is the held-out model (the test metrics are its own); `served` is what the
    registered version predicts with: `trained` itself, or its refit on every window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from ml_assets.models.train import SPLIT_COLUMN, lightgbm_params, predict

    params, rounds = lightgbm_params(spec)
    split = table.column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)
    tags = {
        "dagster.run_id": context.run_id,
        "dagster.asset_key": context.asset_key.to_user_string(),
        "dagster.code_version": str(context.assets_def.code_versions_by_key.get(context.asset_key)),
        "headwater.model": spec.name,
        "headwater.training_data_version": data_version,
    }
    with tracking.start_run(
        f"headwater/{spec.name}", f"{spec.name}-{context.run_id[:8]}", tags
    ) as run:
        mlflow.log_params(
            {**params, "num_boost_round": rounds, "features": ",".join(spec.features)}
        )
        mlflow.log_param("best_iteration", trained.best_iteration)
        refitted = served is not trained
        mlflow.log_param("refit_on_all_windows", refitted)
        mlflow.log_metric("validation_metric", trained.validation_metric)
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        days = table.column("_event_date").to_numpy(zero_copy_only=False)
        mlflow.log_param("training_table", spec.feature_set)
        for name in ("train", "validation", "test"):
            rows = split == name
            mlflow.log_metric(f"rows_{name}", int(rows.sum()))
            mlflow.log_param(f"window_{name}", f"{days[rows].min()}..{days[rows].max()}")

        importance = sorted(served.feature_importance.items(), key=lambda kv: kv[1])
        figure, axis = plt.subplots(figsize=(6, 0.3 * len(importance) + 1))
        axis.barh([f for f, _ in importance], [g for _, g in importance])
        axis.set_xlabel("share of total gain")
        axis.set_title(f"{spec.name}: feature importance")
        figure.tight_layout()
        mlflow.log_figure(figure, "feature_importance.png")
        plt.close(figure)

        # the rows the served model was fitted on
        fitted = np.ones(len(split), dtype=bool) if refitted else split == "train"
        # No copy of every row when every row was fitted (a boolean index always copies).
        train_frame = frame if refitted else frame[fitted]
        labels = pd.Series(table.column("_label").to_numpy()[fitted], index=train_frame.index)
        dataset = training_dataset(
            pd.concat([train_frame, labels.rename("_label")], axis=1, copy=False),
            source=str(path),
            name=f"{spec.feature_set}@{data_version}",
            targets="_label",
            digest=data_version or None,
        )
        mlflow.log_input(dataset, context="training")
        # The drift reference: the newest days of the training window, where every history
        # feature (7-day counts, 30-day averages) has a full history behind it.
        train_days = days[fitted]
        recent = train_days >= max(train_days) - timedelta(
            days=spec.monitoring.drift.reference_days - 1
        )
        _log_reference(spec, served.booster, train_frame[recent])
        mlflow.log_param("window_drift_reference", f"{min(train_days[recent])}..{max(train_days)}")
        if refitted:
            _log_holdout(trained.booster)

        example = frame.head(5)
        info = mlflow.lightgbm.log_model(
            served.booster,
            name="model",
            signature=infer_signature(example, predict(served.booster, example)),
            input_example=example,
            registered_model_name=spec.registered_model_name,
            # Declared, not inferred: inference would resolve the environment at every run.
            pip_requirements=["lightgbm", "pandas<3", "numpy"],
        )
        experiment_id = run.info.experiment_id
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    client = tracking.client()
    client.set_registered_model_alias(spec.registered_model_name, CHALLENGER, version)
    # The version's own test-window metrics: realised performance is judged against them.
    tags["headwater.test_metrics"] = json.dumps(metrics, sort_keys=True)
    # the last day whose labels it was trained or selected on: realised performance starts after
    tags["headwater.trained_through"] = str(max(table.column("_event_date").to_pylist()))
    # and its importance: drift is weighed by it
    tags["headwater.feature_importance"] = json.dumps(
        {f: round(g, 6) for f, g in served.feature_importance.items()}, sort_keys=True
    )
    if refitted:
        # the gate judges this twin, not the refit (which has seen the test window)
        tags["headwater.holdout_artifact"] = HOLDOUT_ARTIFACT
    for key, value in tags.items():
        client.set_model_version_tag(spec.registered_model_name, version, key, value)
    return version, run_id, experiment_id


REFERENCE_ROWS = 20_000


def _log_reference(spec: ModelSpec, booster, train_frame) -> None:
    """The drift reference, stored with the run: a sample of the training window's features
    with the model's own scores on them. Drift of a scored day is measured against it."""
    import tempfile

    import mlflow

    from ml_assets.models.train import predict

    rows = train_frame
    if len(rows) > REFERENCE_ROWS:
        rows = rows.sample(n=REFERENCE_ROWS, random_state=int(spec.lightgbm.get("seed", 0)))
    reference = rows.assign(score=predict(booster, rows))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference.parquet"
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="reference")


def _log_holdout(booster) -> None:
    """The held-out twin of a refit model, stored with the run in LightGBM's own text format."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(HOLDOUT_ARTIFACT).name
        booster.save_model(str(path))
        mlflow.log_artifact(str(path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))


def load_booster(tracking: MlflowTracking, model_name: str, version: str):
    import mlflow

    tracking.client()
    return mlflow.lightgbm.load_model(f"models:/{model_name}/{version}")


def _load_judged(tracking: MlflowTracking, model_name: str, version: VersionRef):
    """The booster the gate judges for a version: its held-out twin when the served model was
    refit on the test window (judging the refit there would grade it on rows it has seen)."""
    artifact = version.tags.get("headwater.holdout_artifact")
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


def _evaluate(spec: ModelSpec, artifacts: ModelArtifacts, tracking: MlflowTracking) -> dict:
    import pyarrow.parquet as pq

    from ml_assets.models.evaluate import DecileBaseline, decide, metrics_for
    from ml_assets.models.train import LABEL_COLUMN, SPLIT_COLUMN, predict, to_frame

    table = pq.read_table(artifacts.folder(spec.name) / "training_set.parquet")
    split = table.column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)
    label = table.column(LABEL_COLUMN).to_numpy()
    frame = to_frame(table, spec)
    test = split == "test"
    challenger = tracking.version_by_alias(spec.registered_model_name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{spec.registered_model_name} has no challenger: train the model first")
    champion = tracking.version_by_alias(spec.registered_model_name, CHAMPION)
    if champion is not None and champion.version == challenger.version:
        champion = None  # already promoted: compare with nothing but the baseline

    baseline_feature = frame[spec.baseline_feature].astype("float64").to_numpy()
    baseline = DecileBaseline.fit(baseline_feature[split == "train"], label[split == "train"])
    metrics: dict[str, dict[str, float] | None] = {
        "challenger": metrics_for(
            spec,
            label[test],
            predict(_load_judged(tracking, spec.registered_model_name, challenger), frame[test]),
        ),
        # The champion's held-out twin stopped learning before this test window began (its own
        # validation window ended earlier); its refit may have trained on these very rows.
        "champion": (
            metrics_for(
                spec,
                label[test],
                predict(_load_judged(tracking, spec.registered_model_name, champion), frame[test]),
            )
            if champion is not None
            else None
        ),
        "baseline": metrics_for(spec, label[test], baseline.predict(baseline_feature[test])),
    }
    decision = decide(
        spec.promotion, metrics["challenger"], metrics["champion"], metrics["baseline"]
    )
    return {
        "challenger_version": challenger.version,
        "champion_version": champion.version if champion is not None else None,
        "metrics": metrics,
        "test_rows": int(test.sum()),
        "decision": decision,
    }


# Rows scored at a time: memory stays bounded whatever the window (a 120-day backfill at 10M
# transactions is 10M rows, ~3.5 GB as Arrow plus pandas in one piece).
SCORE_BATCH_ROWS = 500_000


def _score(spec: ModelSpec, warehouse: Warehouse, tracking: MlflowTracking, version: str, window):
    """Score one window of the feature set and replace that window in `scores.<name>`, in
    batches of SCORE_BATCH_ROWS, in one transaction."""
    import pyarrow as pa

    from ml_assets.models.train import predict, to_frame

    booster = load_booster(tracking, spec.registered_model_name, version)
    table = f"scores.{spec.name}"
    keys = ", ".join(spec.keys)
    rows, score_sum, label_lag_days, preview_md = 0, 0.0, None, ""
    with warehouse.connect() as con:
        # The window is read on a second connection of the same database while `con` writes.
        batches = (
            con.cursor()
            .sql(
                f"select {keys}, {spec.event_time} as event_time, {', '.join(spec.features)} "
                f"from {spec.feature_set} where {spec.score_date} >= $1 "
                f"and {spec.score_date} < $2 order by {keys}",
                params=[window[0], window[1]],
            )
            .to_arrow_reader(SCORE_BATCH_ROWS)
        )
        empty = pa.table(
            {
                **{k: pa.array([], batches.schema.field(k).type) for k in spec.keys},
                "event_time": pa.array([], batches.schema.field("event_time").type),
                "score": pa.array([], pa.float64()),
                "model_version": pa.array([], pa.string()),
            }
        )
        con.execute("create schema if not exists scores")
        con.register("new_scores", empty)
        con.execute(
            f"create table if not exists {table} as "
            "select *, current_timestamp as scored_at from new_scores where false"
        )
        con.execute("begin transaction")
        # (each statement's result is fetched: DuckDB lets no other work, registering the next
        # batch included, start on a connection with a result pending)
        con.execute(
            f"delete from {table} where cast(event_time as date) >= $1 "
            f"and cast(event_time as date) < $2",
            [window[0], window[1]],
        ).fetchall()
        for batch in batches:
            batch = pa.Table.from_batches([batch])
            score = predict(booster, to_frame(batch, spec))
            out = batch.select([*spec.keys, "event_time"]).append_column(
                "score", pa.array(score, pa.float64())
            )
            out = out.append_column("model_version", pa.array([version] * len(out), pa.string()))
            con.register("new_scores", out)
            con.execute(
                f"insert into {table} select *, current_timestamp from new_scores"
            ).fetchall()
            # How many days after its date a scored day's last label is final: the monitor
            # sensor asks for a day's realised performance once the data reaches that far.
            ((lag,),) = con.execute(
                "select max(datediff('day', cast(s.event_time as date), "
                f"l.{spec.label.matures_at})) "
                f"from {spec.label.table} l join new_scores s using ({keys})"
            ).fetchall()
            label_lag_days = lag if label_lag_days is None else max(label_lag_days, lag or 0)
            if not rows:
                preview = con.execute("select * from new_scores limit 5")
                columns = [d[0] for d in preview.description]
                preview_md = markdown_preview(columns, preview.fetchall())
            rows += len(out)
            score_sum += float(score.sum())
        con.execute("commit")
        con.unregister("new_scores")
        (total,) = con.execute(f"select count(*) from {table}").fetchone()
    return {
        "rows": rows,
        "total": total,
        "mean": score_sum / rows if rows else 0.0,
        "preview": preview_md,
        "label_lag_days": label_lag_days,
    }
