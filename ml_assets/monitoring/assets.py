"""The two monitoring assets every model spec gets, per scored day.

    monitoring/<name>/drift        Evidently data drift of the day's features and prediction drift
                                   against the scoring version's training window; HTML + JSON
                                   report; check `drift_below_threshold`
    monitoring/<name>/performance  the day's realised performance on matured labels for the
                                   version that scored it; check `performance_not_decayed`

Both also append to DuckDB (`monitoring.drift`, `monitoring.performance`), so the history can be
queried as well as plotted. The bodies are thin: the steps are plain functions in `measure`, over
`drift` (Evidently) and `judge` (the verdicts).
"""

import json
from pathlib import Path

import dagster as dg

from headwater_core.config import reports_dir, reports_url
from headwater_core.names import (
    DRIFT_CHECK,
    DUCKDB_POOL,
    MONITORING,
    PERFORMANCE_CHECK,
    TAG_FEATURE_IMPORTANCE,
    TAG_TEST_METRICS,
    TAG_TRAINED_THROUGH,
    table_key,
)
from headwater_core.partitions import partitions_def
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import drift_condition
from ml_assets.automation.keys import keys_of
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring import measure
from ml_assets.monitoring.drift import DriftResult
from ml_assets.monitoring.judge import Verdict


class MonitoringReports(dg.ConfigurableResource):
    """Where Evidently reports are written (empty: `<state>/reports`) and the HTTP address that
    serves that folder (empty: $HEADWATER_REPORTS_URL, which `headwater dev` sets)."""

    path: str = ""
    base_url: str = ""

    def folder(self) -> Path:
        return Path(self.path) if self.path else reports_dir()

    def link(self, file: Path) -> str:
        base = self.base_url.rstrip("/") or reports_url()
        if not base:
            return file.resolve().as_uri()
        return f"{base}/{file.resolve().relative_to(self.folder().resolve()).as_posix()}"


def _severity(verdict: Verdict) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if verdict.level == "error" else dg.AssetCheckSeverity.WARN


def _columns_table(result: DriftResult, importance: dict[str, float]) -> str:
    """Every compared column's test, score and verdict, as a markdown table."""
    table = "\n".join(
        f"| {f.column} | {importance.get(f.column, 0.0):.3f} | {f.method} | {f.score:.4f} | "
        f"{f.threshold:.4f} | {'**drifted**' if f.drifted else 'no'} |"
        for f in (*result.features, result.prediction)
    )
    return (
        "| column | importance | test | score | threshold | drifted |\n"
        "|---|---:|---|---:|---:|---|\n" + table
    )


def _drift_metadata(
    measured: measure.DriftMeasurement,
    importance: dict[str, float],
    version: str,
    report_link: str,
    report_path: Path,
) -> dict:
    """The drift asset's metadata: the check's share, Evidently's counts, every column's score,
    the scoring version and the report."""
    result = measured.result
    return {
        "drifted_importance_share": measured.share,
        "drift_share": result.drift_share,
        "drifted_features": result.drifted_features,
        "prediction_drift_score": result.prediction.score,
        "prediction_drifted": result.prediction.drifted,
        **{f"drift_score/{f.column}": f.score for f in result.features},
        "model_version": version,
        "scored_rows": result.current_rows_total,
        "compared_rows": result.current_rows,
        "reference_rows": result.reference_rows,
        "sampled": result.sampled,
        "report": dg.MetadataValue.url(report_link),
        "report_path": dg.MetadataValue.path(str(report_path)),
        "columns": dg.MetadataValue.md(_columns_table(result, importance)),
    }


def _drift_check_spec(spec: ModelSpec, key: dg.AssetKey) -> dg.AssetCheckSpec:
    rule = spec.monitoring.drift
    return dg.AssetCheckSpec(
        DRIFT_CHECK,
        asset=key,
        description=(
            "Drifted features carry less than "
            f"{rule.warn_share:.0%} of the model's importance (WARN at or above "
            f"it, ERROR at or above {rule.error_share:.0%}: the model retrains)."
        ),
    )


def _performance_check_spec(spec: ModelSpec, key: dg.AssetKey) -> dg.AssetCheckSpec:
    rule = spec.monitoring.performance
    return dg.AssetCheckSpec(
        PERFORMANCE_CHECK,
        asset=key,
        description=(
            f"{rule.metric} over the trailing {rule.window_days} days no more than "
            f"{rule.warn_decay:.0%} worse than on the version's test window, clear of noise: "
            f"the best bound of its {rule.confidence:.0%} bootstrap interval decides (WARN "
            f"beyond, ERROR beyond {rule.error_decay:.0%}: the model retrains). Below "
            f"{rule.min_labels} matured labels"
            + (f" or {rule.min_positives} positive" if spec.objective == "binary" else "")
            + ': "not enough labels", not judged.'
        ),
    )


def build_monitoring_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    common = {
        "group_name": MONITORING,
        "owners": [spec.owner],
        "partitions_def": partitions_def(),
        "pool": DUCKDB_POOL,
        "metadata": {"model_spec": dg.MetadataValue.path(spec.source)},
    }
    performance_assets = []
    if spec.monitoring.performance is not None:
        performance_assets.append(_performance_asset(spec, common))
    return [_drift_asset(spec, common), *performance_assets]


def _drift_asset(spec: ModelSpec, common: dict) -> dg.AssetsDefinition:
    name = spec.name
    k = keys_of(name)
    feature_key = dg.AssetKey(table_key(spec.feature_set))
    sample_rows = spec.monitoring.drift.sample_rows

    @dg.asset(
        key=k["drift"],
        deps=[k["scores"], feature_key],
        description=(
            f"Drift of `{name}`'s scored day: Evidently's per-column tests on the model's "
            f"features and on its score, against a sample of the training window of the version "
            f"that scored the day. Days are sampled to {sample_rows:,} rows a side. "
            f"The HTML report is linked in the metadata."
        ),
        kinds={"python", "evidently", "duckdb"},
        automation_condition=drift_condition(feature_key),
        check_specs=[_drift_check_spec(spec, k["drift"])],
        **common,
    )
    def drift(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_tracking: MlflowTracking,
        artifacts: ModelArtifacts,
        reports: MonitoringReports,
    ):
        day = context.partition_key
        with warehouse.connect(read_only=True) as con:
            rows = measure.read_scored_day(con, spec, day)
        if rows.num_rows == 0:
            # Nothing scored that day (a weekly model's off days, or scores not written yet).
            yield dg.MaterializeResult(metadata={"scored_rows": 0})
            yield dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=True,
                description=f"nothing scored on {day}: no drift to measure",
            )
            return
        version = mlflow_tracking.version_of(
            spec.registered_model_name, measure.scoring_version(rows)
        )
        reference = measure.load_reference(
            artifacts.folder(name), version.version, version.run_id, mlflow_tracking.resolved_uri()
        )
        importance = json.loads(version.tags.get(TAG_FEATURE_IMPORTANCE, "{}"))
        folder = reports.folder() / name / "drift"
        html, report_json = folder / f"{day}.html", folder / f"{day}.json"
        measured = measure.measure_drift(
            spec, reference, measure.scored_frame(rows, spec), importance, html, report_json
        )
        with warehouse.connect() as con:
            measure.write_drift(con, name, day, version.version, measured.result, importance)
        yield dg.MaterializeResult(
            metadata=_drift_metadata(
                measured, importance, version.version, reports.link(html), html
            )
        )
        yield dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=measured.verdict.passed,
            severity=_severity(measured.verdict),
            description=measured.verdict.reason,
            metadata={
                "drifted_importance_share": measured.share,
                "drift_share": measured.result.drift_share,
                "day": day,
                "model_version": version.version,
            },
        )

    return drift


def _performance_asset(spec: ModelSpec, common: dict) -> dg.AssetsDefinition:
    name = spec.name
    k = keys_of(name)
    rule = spec.monitoring.performance
    label = spec.label

    @dg.asset(
        key=k["performance"],
        deps=[k["scores"], dg.AssetKey(table_key(label.table))],
        description=(
            f"Realised performance of `{name}` on a scored day, once every label of the day has "
            f"matured ({label.table}.{label.matures_at}), for the model version that scored it. "
            "Asked for by the `model_monitor` sensor."
        ),
        kinds={"python", "duckdb"},
        check_specs=[_performance_check_spec(spec, k["performance"])],
        **common,
    )
    def performance(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_tracking: MlflowTracking,
    ):
        day = context.partition_key
        with warehouse.connect(read_only=True) as con:
            try:
                scored = measure.read_performance_day(con, spec, day)
            except measure.NotMeasurable as e:
                raise dg.Failure(str(e)) from e
        version = mlflow_tracking.version_of(spec.registered_model_name, scored.version)
        test_metrics = json.loads(version.tags.get(TAG_TEST_METRICS, "{}"))
        trained_through = version.tags.get(TAG_TRAINED_THROUGH, "")
        measured = measure.measure_performance(spec, day, scored, test_metrics, trained_through)
        with warehouse.connect() as con:
            measure.write_performance(con, spec, day, version.version, measured, test_metrics)
        verdict = measured.verdict
        context.log.info(f"{name} {day}: {verdict.reason}")
        yield dg.MaterializeResult(
            metadata={
                **{m: float(v) for m, v in measured.metrics.items()},
                **_window_metadata(measured, rule),
                "model_version": version.version,
                "seen_in_training": measured.seen_in_training,
                "rows": scored.rows.num_rows,
                **({"positives": measured.positives} if measured.positives is not None else {}),
                "labels_matured_at": str(scored.matures_at),
            }
        )
        yield dg.AssetCheckResult(
            check_name=PERFORMANCE_CHECK,
            passed=verdict.passed,
            severity=_severity(verdict),
            description=verdict.reason,
            metadata={
                "day": day,
                "model_version": version.version,
                **_window_metadata(measured, rule),
            },
        )

    return performance


def _window_metadata(measured: measure.PerformanceMeasurement, rule) -> dict:
    """The check's evidence as flat numbers Dagster plots over partitions: the trailing
    window's metric, its interval, its matured labels, and the test window's value."""
    w = measured.window
    return {
        "metric": rule.metric,
        "value": w.value,
        "lower": w.lower,
        "upper": w.upper,
        "n_labels": w.n,
        **(
            {"n_positives": measured.window_positives}
            if measured.window_positives is not None
            else {}
        ),
        "test_window_value": measured.reference,
        "interval": f"{w.confidence:.0%}, {w.method}",
        "window_days": rule.window_days,
        "enough_labels": measured.enough_labels,
    }
