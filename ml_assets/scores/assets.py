"""The scores asset of a model spec: `scores/<name>`, daily scores from the champion, written to
DuckDB. The scoring itself is `scoring.score_window`."""

import dagster as dg

from headwater_core.names import (
    CHAMPION,
    DUCKDB_POOL,
    SCORES,
    model_keys,
    scores_table,
    table_key,
)
from headwater_core.partitions import partitions_def
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import scores_condition
from ml_assets.models.engine import TrainingEngine
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking, load_booster
from ml_assets.scores.scoring import score_window


def build_scores_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    name = spec.name
    keys = model_keys(name)
    champion_key = dg.AssetKey(keys["champion"])

    @dg.asset(
        key=dg.AssetKey(keys["scores"]),
        deps=[champion_key, dg.AssetKey(table_key(spec.feature_set))],
        group_name=SCORES,
        owners=[spec.owner],
        description=(
            f"Daily `{name}` scores in `{scores_table(name)}`, one row per row of "
            f"`{spec.feature_set}` that day, from the champion, with the model version on every "
            "row."
        ),
        partitions_def=partitions_def(),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"python", "duckdb", "lightgbm"},
        pool=DUCKDB_POOL,
        metadata={"model_spec": dg.MetadataValue.path(spec.source)},
        output_required=False,
        automation_condition=scores_condition(champion_key),
    )
    def scores(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_tracking: MlflowTracking,
        training_engine: TrainingEngine,
    ):
        champion = mlflow_tracking.version_by_alias(spec.registered_model_name, CHAMPION)
        if champion is None:
            context.log.warning(
                f"no champion for {spec.registered_model_name} yet: nothing scored. Materialise "
                f"{'/'.join(keys['champion'])} once a challenger has passed the gate."
            )
            return
        start, end = context.partition_time_window
        window = (start.date().isoformat(), end.date().isoformat())
        booster = load_booster(mlflow_tracking, spec.registered_model_name, champion.version)
        # On a Dask cluster when one is set: each batch cut into partitions scored there.
        with training_engine.session() as engine, warehouse.connect() as con:
            scored = score_window(
                con,
                spec,
                booster,
                champion.version,
                window,
                engine.predictor(booster),
                mlflow_tracking.training_threads,
                mlflow_tracking.small_training_rows,
            )
        yield dg.MaterializeResult(
            metadata={
                "model_version": champion.version,
                "dagster/partition_row_count": scored.rows,
                "dagster/row_count": scored.total,
                "mean_score": scored.mean,
                "preview": dg.MetadataValue.md(scored.preview),
                **(
                    {"label_lag_days": int(scored.label_lag_days)}
                    if scored.label_lag_days is not None
                    else {}
                ),
            }
        )

    return scores
