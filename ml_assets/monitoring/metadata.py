"""The monitoring assets' metadata: what the Dagster UI shows of a drift or performance
measurement (flat numbers it plots over partitions, and tables)."""

from pathlib import Path

import dagster as dg

from ml_assets.monitoring import measure
from ml_assets.monitoring import window as window_
from ml_assets.monitoring.drift import DriftResult


def number(value: float) -> str:
    return f"{value:.4f}" if value == value else "-"  # NaN: not compared


def columns_table(result: DriftResult, importance: dict[str, float]) -> str:
    """Every column's test, threshold, score and verdict, as a markdown table."""
    table = "\n".join(
        f"| {f.column} | {importance.get(f.column, 0.0):.3f} | {f.method} | "
        f"{number(f.threshold)} | {number(f.score)} | "
        f"{'**drifted**' if f.drifted else 'no' if f.compared else 'not judged'} |"
        for f in (*result.features, result.prediction)
    )
    return (
        "| column | importance | test | threshold | score | drifted |\n"
        "|---|---:|---|---:|---:|---|\n" + table
    )


def drift_metadata(
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
        "columns": dg.MetadataValue.md(columns_table(result, importance)),
    }


def drift_check_metadata(
    measured: measure.DriftMeasurement, window: window_.ScoredWindow, version: str
) -> dict:
    """The drift check's evidence for one day: status, shares, window and each feature's test."""
    result = measured.result
    return {
        "drift_status": result.status,
        "drifted_importance_share": measured.share,
        "drift_share": result.drift_share,
        "day": window.last_day,
        "window": window.label,
        "model_version": version,
        "methods": dg.MetadataValue.json(
            {f.column: f"{f.method} ({number(f.threshold)})" for f in result.features}
        ),
    }


def window_metadata(measured: measure.PerformanceMeasurement, rule) -> dict:
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
