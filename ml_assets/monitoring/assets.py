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
from headwater_core.partitions import DAILY_PARTITIONS
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import drift_condition
from ml_assets.automation.keys import keys_of
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring import measure
from ml_assets.monitoring import window as window_
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


def _number(value: float) -> str:
    return f"{value:.4f}" if value == value else "-"  # NaN: not compared


def _columns_table(result: DriftResult, importance: dict[str, float]) -> str:
    """Every column's test, threshold, score and verdict, as a markdown table."""
    table = "\n".join(
        f"| {f.column} | {importance.get(f.column, 0.0):.3f} | {f.method} | "
        f"{_number(f.threshold)} | {_number(f.score)} | "
        f"{'**drifted**' if f.drifted else 'no' if f.compared else 'not judged'} |"
        for f in (*result.features, result.prediction)
    )
    return (
        "| column | importance | test | threshold | score | drifted |\n"
        "|---|---:|---|---:|---:|---|\n" + table
    )


def _drift_metadata(
    measured: measure.DriftMeasurement,
    importance: dict[str, float],
    version: str,
    window: window_.ScoredWindow,
    report_link: str,
    report_path: Path,
) -> dict:
    """The drift asset's metadata: the check's share, Evidently's counts, every column's method
    and score, the window compared, the scoring version and the report."""
    result = measured.result
    compared = [f for f in result.features if f.compared]
    return {
        "drift_status": result.status,
        **({"not_enough_data": result.shortfall} if result.shortfall else {}),
        "drifted_importance_share": measured.share,
        "drift_share": result.drift_share,
        "drifted_features": result.drifted_features,
        "compared_features": len(compared),
        **(
            {"prediction_drift_score": result.prediction.score}
            if result.prediction.compared
            else {}
        ),
        "prediction_drifted": result.prediction.drifted,
        **{f"drift_score/{f.column}": f.score for f in compared},
        "model_version": version,
        "window": window.label,
        "scored_rows": result.current_rows_total,
        "compared_rows": result.current_rows,
        "reference_rows": result.reference_rows,
        "sampled": result.sampled,
        "report": dg.MetadataValue.url(report_link),
        "report_path": dg.MetadataValue.path(str(report_path)),
        "columns": dg.MetadataValue.md(_columns_table(result, importance)),
    }


def _drift_check_result(
    measured: measure.DriftMeasurement, window: window_.ScoredWindow, version: str
) -> dg.AssetCheckResult:
    result = measured.result
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=measured.verdict.passed,
        severity=_severity(measured.verdict),
        description=f"{window.label}: {measured.verdict.reason}",
        metadata={
            "drift_status": result.status,
            "drifted_importance_share": measured.share,
            "drift_share": result.drift_share,
            "day": window.last_day,
            "window": window.label,
            "model_version": version,
            "methods": dg.MetadataValue.json(
                {f.column: f"{f.method} ({_number(f.threshold)})" for f in result.features}
            ),
        },
    )


def _drift_check_spec(spec: ModelSpec, key: dg.AssetKey) -> dg.AssetCheckSpec:
    rule = spec.monitoring.drift
    overrides = ", ".join(f"{c}: {m}" for c, m in rule.methods.items())
    return dg.AssetCheckSpec(
        DRIFT_CHECK,
        asset=key,
        description=(
            "Drifted features carry less than "
            f"{rule.warn_share:.0%} of the model's importance (WARN at or above "
            f"it, ERROR at or above {rule.error_share:.0%}: the model retrains). "
            f"Window: {rule.window_partitions} day(s), grown back to {rule.min_rows} rows "
            f"(at most {rule.max_partitions} days); reference: {rule.reference_label}. "
            "Tests: Evidently's by size for numeric and low-cardinality columns, Jensen-Shannon "
            f"on the top {rule.top_k} levels + other above {rule.max_levels} levels"
            + (f"; set per feature: {overrides}" if overrides else "")
            + (f"; exempt: {', '.join(rule.exempt)}" if rule.exempt else "")
            + f". Fewer than {rule.min_rows} rows a side: passes as not enough data."
        ),
    )


def _performance_check_spec(spec: ModelSpec, key: dg.AssetKey) -> dg.AssetCheckSpec:
    rule = spec.monitoring.performance
    return dg.AssetCheckSpec(
        PERFORMANCE_CHECK,
        asset=key,
        description=(
            f"{rule.metric} no more than {rule.warn_decay:.0%} worse than on the version's "
            f"test window (WARN beyond, ERROR beyond {rule.error_decay:.0%}: the model "
            "retrains)."
        ),
    )


def build_monitoring_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    common = {
        "group_name": MONITORING,
        "owners": [spec.owner],
        "partitions_def": DAILY_PARTITIONS,
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
    rule = spec.monitoring.drift

    @dg.asset(
        key=k["drift"],
        deps=[k["scores"], feature_key],
        description=(
            f"Drift of `{name}`'s scored window up to the day: Evidently's per-column tests on "
            f"the model's features and on its score, against {rule.reference_label} (of the "
            f"version that scored the day). Sampled to {rule.sample_rows:,} rows a side. The "
            "method per feature is in the `columns` table; the HTML report is linked."
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
            window = window_.read_scored_window(con, spec, day)
            same_period = (
                measure.scored_frame(window_.read_same_period(con, spec, window), spec)
                if rule.same_period_days is not None and window.day_rows
                else None
            )
        if window.day_rows == 0:
            # Nothing scored that day (a weekly model's off days, or scores not written yet).
            yield dg.MaterializeResult(metadata={"scored_rows": 0})
            yield dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=True,
                description=f"nothing scored on {day}: no drift to measure",
            )
            return
        rows = window.rows
        version = mlflow_tracking.version_of(
            spec.registered_model_name, measure.scoring_version(rows)
        )
        reference = same_period
        if reference is None:
            reference = measure.load_reference(
                artifacts.folder(name),
                version.version,
                version.run_id,
                mlflow_tracking.resolved_uri(),
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
                measured, importance, version.version, window, reports.link(html), html
            )
        )
        yield _drift_check_result(measured, window, version.version)

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
            measure.write_performance(
                con, name, day, version.version, measured.metrics, test_metrics
            )
        verdict = measured.verdict
        context.log.info(f"{name} {day}: {verdict.reason}")
        window = f"trailing_{rule.window_days}d"
        yield dg.MaterializeResult(
            metadata={
                **{m: float(v) for m, v in measured.metrics.items()},
                f"test_window_{rule.metric}": measured.reference,
                f"{window}_{rule.metric}": float(measured.window_metrics[rule.metric]),
                f"{window}_rows": measured.window_rows,
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
            metadata={"day": day, "model_version": version.version, "metric": rule.metric},
        )

    return performance
