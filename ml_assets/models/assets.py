"""The five assets every model spec gets, in lineage order.

    models/<name>/training_set   matured rows of the feature set, time-split, as Parquet
    models/<name>/model          LightGBM fitted on the train window (the held-out model), then
                                 refit on all windows (the served model); tracked in MLflow,
                                 registered as challenger
    models/<name>/evaluation     challenger vs champion vs baseline on the test window (held-out
                                 models); its blocking check is the promotion gate
    models/<name>/champion       the `champion` alias moved to the challenger (gate passed only);
                                 a refusal records the champion kept
    scores/<name>                daily scores from the champion, written to DuckDB
                                 (`ml_assets.scores`)

Each body reads its inputs, calls plain functions and reports metadata: the work is in
`training_set`, `train`, `evaluate` / `evaluation`, `mlflow_run` and `registry`.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from headwater_core.freshness import freshness_policy
from headwater_core.metadata import markdown_preview
from headwater_core.names import (
    CHALLENGER,
    CHAMPION,
    DUCKDB_POOL,
    GATE_CHECK,
    MODELS,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_SERVED_COMPARISON,
    model_keys,
    table_key,
)
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import (
    champion_condition,
    follows_training,
    retrain_condition,
)
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.engine import TrainingEngine
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking
from ml_assets.scores.assets import build_scores_asset
from ml_assets.serving.gate import served_gate


def build_model_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """A spec's assets in lineage order: training set, model, evaluation, champion, scores."""
    return [
        build_training_set_asset(spec),
        build_model_asset(spec),
        build_evaluation_asset(spec),
        build_champion_asset(spec),
        build_scores_asset(spec),
    ]


def _keys(spec: ModelSpec) -> dict[str, dg.AssetKey]:
    return {role: dg.AssetKey(key) for role, key in model_keys(spec.name).items()}


def _common(spec: ModelSpec) -> dict:
    """What the four model assets of a spec share: group, owner, code version, the spec's path."""
    # The spec is the model's code: a change to it is a new code version in the UI and on the
    # MLflow run.
    code_version = hashlib.sha256(Path(spec.source).read_bytes()).hexdigest()[:12]
    return {
        "group_name": MODELS,
        "owners": [spec.owner],
        "code_version": code_version,
        "metadata": {"model_spec": dg.MetadataValue.path(spec.source)},
    }


def build_training_set_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=_keys(spec)["training_set"],
        deps=[dg.AssetKey(table_key(spec.feature_set)), dg.AssetKey(table_key(spec.label.table))],
        description=(
            f"Training set of `{spec.name}`: rows of `{spec.feature_set}` whose label has matured "
            "by the cut-off (the newest event in the feature set), with the label as known then, "
            "split by time into train / validation / test."
        ),
        kinds={"python", "duckdb", "parquet"},
        pool=DUCKDB_POOL,
        automation_condition=retrain_condition(spec),
        **_common(spec),
    )
    def training_set(
        context: dg.AssetExecutionContext, warehouse: Warehouse, artifacts: ModelArtifacts
    ) -> dg.MaterializeResult:
        from ml_assets.models.training_set import build_training_set, matured_rows

        with warehouse.connect(read_only=True) as con:
            cutoff, rows = matured_rows(con, spec)
        built = build_training_set(spec, cutoff, rows, artifacts.training_set(spec.name))
        return dg.MaterializeResult(
            data_version=dg.DataVersion(built.data_version),
            metadata={
                "cutoff": str(built.cutoff),
                **{f"rows_{split}": count for split, count in built.rows.items()},
                "label_mean": built.label_mean,
                **(built.sample.as_metadata() if built.sample else {}),
                "data_version": built.data_version,
                "path": dg.MetadataValue.path(str(built.path)),
                "windows": dg.MetadataValue.json(built.windows.as_dict()),
                "dagster/row_count": built.table.num_rows,
            },
        )

    return training_set


def build_model_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    keys = _keys(spec)

    @dg.asset(
        key=keys["model"],
        deps=[keys["training_set"]],
        description=(
            f"{spec.description} Trained with LightGBM on the training window, early-stopped "
            "on the validation window and measured on the test window (the held-out model); "
            "the version registered with alias `challenger` is the same recipe refit on all "
            "three windows, so the newest matured days train the model that serves. Tracked "
            "in MLflow with its held-out twin."
        ),
        kinds={"python", "lightgbm", "mlflow"},
        freshness_policy=freshness_policy(spec.freshness),
        automation_condition=follows_training(),
        **_common(spec),
    )
    def model(
        context: dg.AssetExecutionContext,
        artifacts: ModelArtifacts,
        mlflow_tracking: MlflowTracking,
        training_engine: TrainingEngine,
    ) -> dg.MaterializeResult:
        import pyarrow.parquet as pq

        from ml_assets.models.evaluate import metrics_on_test_window
        from ml_assets.models.mlflow_run import RunOrigin, log_training_run

        # A tracking server that is down fails the step now, not after training.
        mlflow_tracking.check_reachable()
        mlflow_tracking.prepare_lightgbm()
        path = artifacts.training_set(spec.name)
        table = pq.read_table(path)
        data_version = _latest_data_version(context, keys["training_set"])
        # This process or a Dask cluster: the same recipe, plain Boosters back (`engine`).
        with training_engine.session() as engine:
            fitted = engine.fit(
                spec, table, mlflow_tracking.training_threads, mlflow_tracking.small_training_rows
            )
            where = engine.metadata()
        # The held-out model: trained on the train window, judged on the test window.
        metrics = metrics_on_test_window(spec, table, fitted.frame, fitted.trained.booster)
        origin = RunOrigin(
            run_id=context.run_id,
            asset_key=context.asset_key.to_user_string(),
            code_version=str(context.assets_def.code_versions_by_key.get(context.asset_key)),
        )
        logged = log_training_run(
            mlflow_tracking,
            spec,
            fitted,
            table,
            source=path,
            data_version=data_version,
            metrics=metrics,
            origin=origin,
        )
        return dg.MaterializeResult(
            metadata={
                **_model_metadata(spec, mlflow_tracking, fitted, logged, metrics, data_version),
                **where,
            }
        )

    return model


def _model_metadata(
    spec: ModelSpec, tracking: MlflowTracking, fitted, logged, metrics, data_version: str
) -> dict:
    """What the model asset reports: the registered version and its run, the held-out model's
    training and test-window figures, and the served model's top features."""
    top = sorted(fitted.served.feature_importance.items(), key=lambda kv: -kv[1])[:10]
    return {
        "registered_model": spec.registered_model_name,
        "model_version": logged.version,
        "alias": CHALLENGER,
        "mlflow_run_id": logged.run_id,
        "mlflow_run": dg.MetadataValue.url(tracking.run_link(logged.experiment_id, logged.run_id)),
        "best_iteration": fitted.trained.best_iteration,
        "validation_metric": fitted.trained.validation_metric,
        "refit_on_all_windows": fitted.refitted,
        **{f"test_{k}": v for k, v in metrics.items()},
        "top_features": dg.MetadataValue.md(
            markdown_preview(
                ["feature", "share of gain"], [(f, f"{g:.3f}") for f, g in top], limit=10
            )
        ),
        "training_data_version": data_version,
    }


def _latest_data_version(context: dg.AssetExecutionContext, key: dg.AssetKey) -> str:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return ""
    value = event.asset_materialization.metadata.get("data_version")
    return str(value.value) if value is not None else ""


def build_evaluation_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    keys = _keys(spec)

    @dg.asset(
        key=keys["evaluation"],
        deps=[keys["model"]],
        description=(
            f"`{spec.name}` challenger, champion and a one-feature baseline "
            f"(`{spec.baseline_feature}` by decile) on the same test window, each model by its "
            "held-out twin (trained before the window began). The check "
            f"`{GATE_CHECK}` is the promotion gate: the lower bound of the paired bootstrap "
            f"interval ({spec.promotion.confidence:.0%}) of the {spec.promotion.metric} "
            f"improvement over the champion must reach {spec.promotion.min_improvement}."
        ),
        kinds={"python", "mlflow"},
        check_specs=[
            dg.AssetCheckSpec(
                GATE_CHECK,
                asset=keys["evaluation"],
                blocking=True,
                description=(
                    "Passes when the challenger beats the champion on the same test rows by "
                    "the spec's margin, clear of noise: the lower bound of the paired bootstrap "
                    f"interval of the {spec.promotion.metric} improvement "
                    f"({spec.promotion.confidence:.0%}, two-sided) reaches "
                    f"{spec.promotion.min_improvement}. Fails with WARN when it does not (the "
                    "champion stays), with ERROR when the challenger does not even beat the "
                    "baseline (the run stops)."
                ),
            )
        ],
        automation_condition=follows_training(),
        **_common(spec),
    )
    def evaluation(
        context: dg.AssetExecutionContext,
        artifacts: ModelArtifacts,
        mlflow_tracking: MlflowTracking,
    ):
        import pyarrow.parquet as pq

        from ml_assets.models import evaluation as ev

        table = pq.read_table(artifacts.training_set(spec.name))
        result = ev.evaluate_challenger(spec, table, mlflow_tracking)
        # The decision on the challenger's tags; a refusal re-bases the champion's monitoring.
        rebased = ev.record_decision(spec, result, mlflow_tracking)
        artifacts.evaluation(spec.name).write_text(result.to_json())
        yield dg.MaterializeResult(
            metadata={
                "metrics": dg.MetadataValue.md(ev.metrics_markdown(result.metrics, spec.metrics)),
                "challenger_version": result.challenger_version,
                "champion_version": result.champion_version or "none",
                "decision": result.decision.reason,
                "test_rows": result.test_rows,
                **ev.gate_metadata(result.decision),
                **rebased,
                **{
                    f"{who}_{metric}": value
                    for who, values in result.metrics.items()
                    if values
                    for metric, value in values.items()
                },
            },
            check_results=[_gate_check_result(result.decision, rebased)],
        )

    return evaluation


def _gate_check_result(decision, rebased: dict[str, str]) -> dg.AssetCheckResult:
    """The promotion gate's check result for an `evaluate.Decision` (`rebased`: what it did to
    the champion's monitoring baseline, `evaluation.rebaseline_metadata`)."""
    from ml_assets.models.evaluation import gate_metadata

    return dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=decision.promote,
        # A challenger worse than the baseline is broken: ERROR blocks the rest of the run. One
        # merely not better than the champion is an expected refusal: WARN lets the run go on,
        # the champion asset keeps the champion, and scores keep coming from it.
        severity=(dg.AssetCheckSeverity.ERROR if decision.broken else dg.AssetCheckSeverity.WARN),
        description=decision.reason,
        metadata={
            "metric": decision.metric,
            "challenger": decision.challenger,
            "champion": decision.champion if decision.champion is not None else "none",
            "baseline": decision.baseline,
            **gate_metadata(decision),
            **rebased,
        },
    )


def build_champion_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    keys = _keys(spec)

    @dg.asset(
        key=keys["champion"],
        deps=[keys["evaluation"]],
        description=(
            f"The `champion` alias of `{spec.registered_model_name}`, moved to the challenger "
            "only when the evaluation's gate passed (and never to a half-registered version). "
            "Every decision is a materialisation whose data version is the champion's version: "
            "a refused challenger records the champion kept, so scores go on from it."
        ),
        kinds={"python", "mlflow"},
        automation_condition=champion_condition(),
        # Nothing is materialised only when there is no champion at all to keep.
        output_required=False,
        **_common(spec),
    )
    def champion(context: dg.AssetExecutionContext, mlflow_tracking: MlflowTracking):
        from ml_assets.models.registry import move_champion

        model = spec.registered_model_name
        challenger = mlflow_tracking.version_by_alias(model, CHALLENGER)
        if challenger is None:
            raise ValueError(f"{model} has no challenger to promote")
        gate = challenger.tags.get(TAG_GATE)
        reason = challenger.tags.get(TAG_GATE_REASON, "")
        if gate == "refused":
            # The gate said no (this asset also runs on its own, so it checks for itself).
            current = mlflow_tracking.version_by_alias(model, CHAMPION)
            kept = current.version if current else "none"
            context.log.info(
                f"champion stays {kept}: version {challenger.version} refused ({reason})"
            )
            if current is None:
                return
            # Recorded all the same: a step that yields nothing makes Dagster skip every step
            # after it in the run, and the scores of a run whose gate refused come from the
            # champion kept (issue 13).
            yield _champion_result(current.version, False, current.version, reason)
            return
        if gate != "passed":
            raise ValueError(
                f"version {challenger.version} of {model} has not been evaluated: materialise "
                f"{keys['evaluation'].to_user_string()} first"
            )
        served, served_reason = served_gate(spec, challenger.version, _served(challenger))
        if served_reason:
            context.log.info(f"{model} version {challenger.version}: {served_reason}")
        if not served:
            current = mlflow_tracking.version_by_alias(model, CHAMPION)
            if current is not None:  # the served comparison needs a champion: it has one
                yield _champion_result(current.version, False, current.version, served_reason)
                return
        reason = f"{reason}; {served_reason}" if served_reason else reason
        previous = move_champion(mlflow_tracking, model, challenger.version, "promoted", reason)
        context.log.info(f"champion: version {previous or 'none'} -> {challenger.version}")
        yield _champion_result(challenger.version, True, previous, reason)

    return champion


def _served(version) -> dict | None:
    """The served comparison tagged on a version by serving/<name>/shadow_comparison."""
    raw = version.tags.get(TAG_SERVED_COMPARISON)
    return json.loads(raw) if raw else None


def _champion_result(
    version: str, promoted: bool, previous: str | None, reason: str
) -> dg.MaterializeResult:
    """The champion's materialisation: the version holding the alias after the decision."""
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "champion_version": version,
            "promoted": promoted,
            "previous_champion_version": previous or "none",
            "reason": reason,
        },
    )
