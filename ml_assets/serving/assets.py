"""The assets of a model's served traffic, per spec and day (group `serving`):

    serving/<name>/predictions        the day's log of `headwater serve` in the warehouse:
                                      `serving.<name>_predictions` (the champion's answers),
                                      `serving.<name>_shadow_predictions` (the challenger's),
                                      refused records in `serving.quarantine`
    serving/<name>/drift              drift of the served features and scores, as
                                      monitoring/<name>/drift measures batch scores
    serving/<name>/performance        realised performance on served requests, once labels mature
    serving/<name>/shadow_comparison  challenger vs champion on the same requests; its result is
                                      tagged on the challenger's version for the gate

Drift and performance are the monitoring assets themselves (`build_monitoring_assets` with a
served `Traffic`): the same code, metadata and checks, written to `serving.drift` and
`serving.performance`. None runs unattended yet: materialise a day (or a range) once its log is
complete.
"""

import json
from datetime import date
from pathlib import Path

import dagster as dg

from headwater_core.names import (
    DUCKDB_POOL,
    SERVED_DRIFT_TABLE,
    SERVED_PERFORMANCE_TABLE,
    SERVING,
    SERVING_QUARANTINE_TABLE,
    TAG_SERVED_COMPARISON,
    predictions_table,
    serving_keys,
    shadow_predictions_table,
    table_key,
)
from headwater_core.partitions import partitions_def
from headwater_core.resources import Warehouse
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring.assets import Traffic, build_monitoring_assets
from ml_assets.serving import load, prediction_log, shadow


class PredictionsConfig(dg.Config):
    log_dir: str = ""
    """The log folder `headwater serve` writes (empty: $HEADWATER_SERVING_LOG_DIR, else
    `<state>/serving`). Run config rather than a resource: every caller that materialises the
    ML assets with its own resources keeps working."""
    max_quarantined_share: float = load.MAX_QUARANTINED_SHARE
    """Refuse the day (keep its loaded rows) when a larger share of its records is bad."""

    def folder(self) -> Path:
        return Path(self.log_dir) if self.log_dir else prediction_log.log_dir()


def _keys(name: str) -> dict[str, dg.AssetKey]:
    return {role: dg.AssetKey(key) for role, key in serving_keys(name).items()}


def build_serving_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """A spec's served-traffic assets: predictions, drift, performance, shadow comparison."""
    k = _keys(spec.name)
    traffic = Traffic(
        drift_key=k["drift"],
        performance_key=k["performance"],
        scored_key=k["predictions"],
        group=SERVING,
        served=predictions_table(spec.name),
        drift_table=SERVED_DRIFT_TABLE,
        performance_table=SERVED_PERFORMANCE_TABLE,
        automation=False,
    )
    return [
        _predictions_asset(spec, k),
        *build_monitoring_assets(spec, traffic),
        _shadow_comparison_asset(spec, k),
    ]


def _common(spec: ModelSpec) -> dict:
    return {
        "group_name": SERVING,
        "owners": [spec.owner],
        "partitions_def": partitions_def(),
        "backfill_policy": dg.BackfillPolicy.single_run(),
        # one materialisation per day of the run (a range is one run)
        "output_required": False,
        "pool": DUCKDB_POOL,
        "metadata": {"model_spec": dg.MetadataValue.path(spec.source)},
    }


def _predictions_asset(spec: ModelSpec, k: dict[str, dg.AssetKey]) -> dg.AssetsDefinition:
    name = spec.name

    @dg.asset(
        key=k["predictions"],
        description=(
            f"What `headwater serve` answered for `{name}` on the day, from its log: "
            f"`{predictions_table(name)}` (the champion's answers) and "
            f"`{shadow_predictions_table(name)}` (the shadow challenger's), one row per request "
            "with its keys and features as columns; refused records (bad or duplicate request "
            f"ids, unreadable features) in `{SERVING_QUARANTINE_TABLE}`. Re-running a day "
            "replaces it."
        ),
        kinds={"python", "duckdb"},
        **_common(spec),
    )
    def predictions(
        context: dg.AssetExecutionContext,
        config: PredictionsConfig,
        warehouse: Warehouse,
    ):
        for day in context.partition_keys:
            records = prediction_log.read_day(config.folder(), name, date.fromisoformat(day))
            with warehouse.connect() as con:
                try:
                    loaded = load.load_day(
                        con, spec, date.fromisoformat(day), records, config.max_quarantined_share
                    )
                except load.LogRefused as e:
                    raise dg.Failure(str(e)) from None
            if loaded.quarantined:
                context.log.warning(f"{name} {day}: {loaded.quarantined} records quarantined")
            yield dg.AssetMaterialization(
                asset_key=k["predictions"], partition=day, metadata=_loaded_metadata(loaded)
            )

    return predictions


def _loaded_metadata(loaded: load.LoadedDay) -> dict:
    return {
        "records_read": loaded.read,
        "dagster/partition_row_count": loaded.champion,
        "champion_rows": loaded.champion,
        "shadow_rows": loaded.shadow,
        "quarantined": loaded.quarantined,
        "quarantined_share": loaded.quarantined_share,
        "rows_reconciled": loaded.read == loaded.champion + loaded.shadow + loaded.quarantined,
        "quarantine_reasons": dg.MetadataValue.json(loaded.reasons),
        "versions": dg.MetadataValue.json(loaded.versions),
    }


def _shadow_comparison_asset(spec: ModelSpec, k: dict[str, dg.AssetKey]) -> dg.AssetsDefinition:
    name, rule = spec.name, spec.serving.shadow

    @dg.asset(
        key=k["shadow_comparison"],
        deps=[k["predictions"], dg.AssetKey(table_key(spec.label.table))],
        description=(
            f"The shadow challenger against the champion on the same served requests of the "
            f"{rule.window_days} days up to the day: agreement of their scores, and on matured "
            f"labels the paired bootstrap of {spec.promotion.metric} "
            f"({spec.promotion.confidence:.0%}). Written to `serving.shadow_comparison` and "
            f"tagged on the challenger's version (`{TAG_SERVED_COMPARISON}`)"
            + (", which the promotion gate reads." if rule.gate else ".")
        ),
        kinds={"python", "duckdb", "mlflow"},
        **_common(spec),
    )
    def shadow_comparison(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_tracking: MlflowTracking
    ):
        for day in context.partition_keys:
            with warehouse.connect() as con:
                compared = shadow.compare(spec, day, shadow.read_pairs(con, spec, day))
                shadow.write_comparison(con, name, compared)
            context.log.info(f"{name} {day}: {compared.said()}")
            if compared.challenger_version is not None:
                # the newest day's comparison is what the gate reads for that version
                mlflow_tracking.client().set_model_version_tag(
                    spec.registered_model_name,
                    compared.challenger_version,
                    TAG_SERVED_COMPARISON,
                    json.dumps(compared.as_tag()),
                )
            yield dg.AssetMaterialization(
                asset_key=k["shadow_comparison"],
                partition=day,
                metadata=_comparison_metadata(compared),
            )

    return shadow_comparison


def _comparison_metadata(c: shadow.ShadowComparison) -> dict:
    numbers = {
        "pairs": c.pairs,
        "correlation": c.correlation,
        "rank_correlation": c.rank_correlation,
        "mean_difference": c.mean_difference,
        "mean_abs_difference": c.mean_abs_difference,
        "labelled": c.labelled,
        "improvement": c.improvement,
        "lower": c.lower,
        "upper": c.upper,
    }
    return {
        **{key: value for key, value in numbers.items() if value == value},  # NaN: not shown
        **({"positives": c.positives} if c.positives is not None else {}),
        "metric": c.metric,
        "window": f"{c.first_day}..{c.day}",
        "challenger_version": c.challenger_version or "none",
        "champion_versions": c.champion_versions or "none",
        "enough_labels": c.enough_labels,
        "summary": c.said(),
    }
