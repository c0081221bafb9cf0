"""The two monitoring assets every model spec gets, per scored day.

    monitoring/<name>/drift        Evidently data drift of the day's features and prediction drift
                                   against the scoring version's training window; HTML + JSON
                                   report; check `drift_below_threshold`
    monitoring/<name>/performance  the day's realised performance on matured labels for the
                                   version that scored it; check `performance_not_decayed`

Both also append to DuckDB (`monitoring.drift`, `monitoring.performance`), so the history can be
queried as well as plotted. The bodies are thin: the logic is in `drift` and `monitoring`.
"""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from headwater_core.config import reports_dir, reports_url
from headwater_core.names import DUCKDB_POOL, REFERENCE_ARTIFACT, table_key
from headwater_core.partitions import DAILY_PARTITIONS
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import DRIFT_CHECK, PERFORMANCE_CHECK, drift_condition, keys_of
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking
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


def _day_after(value) -> datetime:
    day = value.date() if isinstance(value, datetime) else value
    return datetime.combine(day + timedelta(days=1), datetime.min.time())


def _severity(verdict: Verdict) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if verdict.level == "error" else dg.AssetCheckSeverity.WARN


def _replace_rows(con, table: str, columns: str, model: str, day: str, rows: list[tuple]) -> None:
    """Replace one model's day in a monitoring table (re-running a day is idempotent)."""
    con.execute("create schema if not exists monitoring")
    con.execute(f"create table if not exists monitoring.{table} ({columns})")
    con.execute("begin transaction")
    con.execute(f"delete from monitoring.{table} where model = $1 and day = $2", [model, day])
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"insert into monitoring.{table} values ({marks})", rows)
    con.execute("commit")


def _reference(spec: ModelSpec, tracking: MlflowTracking, artifacts: ModelArtifacts, version):
    """The version's drift reference, downloaded once into the model's artifact folder."""
    import pandas as pd

    cached = artifacts.folder(spec.name) / f"reference_v{version.version}.parquet"
    if not cached.exists():
        import mlflow

        tracking.client()
        downloaded = mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path=REFERENCE_ARTIFACT,
            dst_path=str(cached.parent / f".download_v{version.version}"),
        )
        Path(downloaded).replace(cached)
    return pd.read_parquet(cached)


def build_monitoring_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    name = spec.name
    k = keys_of(name)
    feature_key = dg.AssetKey(table_key(spec.feature_set))
    rule = spec.monitoring
    common = {
        "group_name": "monitoring",
        "owners": [spec.owner],
        "partitions_def": DAILY_PARTITIONS,
        "pool": DUCKDB_POOL,
        "metadata": {"model_spec": dg.MetadataValue.path(spec.source)},
    }

    @dg.asset(
        key=k["drift"],
        deps=[k["scores"], feature_key],
        description=(
            f"Drift of `{name}`'s scored day: Evidently's per-column tests on the model's "
            f"features and on its score, against a sample of the training window of the version "
            f"that scored the day. Days are sampled to {rule.drift.sample_rows:,} rows a side. "
            f"The HTML report is linked in the metadata."
        ),
        kinds={"python", "evidently", "duckdb"},
        automation_condition=drift_condition(feature_key),
        check_specs=[
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=k["drift"],
                description=(
                    "Drifted features carry less than "
                    f"{rule.drift.warn_share:.0%} of the model's importance (WARN at or above "
                    f"it, ERROR at or above {rule.drift.error_share:.0%}: the model retrains)."
                ),
            )
        ],
        **common,
    )
    def drift(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_tracking: MlflowTracking,
        artifacts: ModelArtifacts,
        reports: MonitoringReports,
    ):
        from ml_assets.models.train import to_frame
        from ml_assets.monitoring.drift import compute_drift
        from ml_assets.monitoring.judge import importance_share, judge_drift

        day = context.partition_key
        keys = ", ".join(spec.keys)
        columns = ", ".join(f"f.{c}" for c in spec.features)
        with warehouse.connect(read_only=True) as con:
            rows = con.sql(
                f"select {columns}, s.score, s.model_version from scores.{name} s "
                f"join {spec.feature_set} f using ({keys}) "
                "where cast(s.event_time as date) = $1",
                params=[day],
            ).to_arrow_table()
        if rows.num_rows == 0:
            # Nothing scored that day (a weekly model's off days, or scores not written yet).
            yield dg.MaterializeResult(metadata={"scored_rows": 0})
            yield dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=True,
                description=f"nothing scored on {day}: no drift to measure",
            )
            return
        versions = sorted(set(rows.column("model_version").to_pylist()))
        version = mlflow_tracking.version_of(spec.registered_model_name, versions[-1])
        reference = _reference(spec, mlflow_tracking, artifacts, version)
        current = to_frame(rows, spec).assign(score=rows.column("score").to_numpy())
        folder = reports.folder() / name / "drift"
        html, report_json = folder / f"{day}.html", folder / f"{day}.json"
        result = compute_drift(
            reference,
            current,
            features=spec.features,
            categorical=spec.categorical,
            max_rows=rule.drift.sample_rows,
            seed=int(spec.lightgbm.get("seed", 0)),
            html_path=html,
            json_path=report_json,
        )
        drifted = [f.column for f in result.features if f.drifted]
        importance = json.loads(version.tags.get("headwater.feature_importance", "{}"))
        share = importance_share(drifted, importance, spec.features)
        verdict = judge_drift(rule.drift, share, drifted, len(result.features))
        computed_at = datetime.now(UTC).replace(tzinfo=None)
        with warehouse.connect() as con:
            _replace_rows(
                con,
                "drift",
                "model varchar, day date, model_version varchar, column_name varchar, "
                "is_prediction boolean, method varchar, score double, threshold double, "
                "drifted boolean, importance double, computed_at timestamp",
                name,
                day,
                [
                    (name, day, version.version, f.column, f is result.prediction, f.method)
                    + (f.score, f.threshold, f.drifted, importance.get(f.column), computed_at)
                    for f in (*result.features, result.prediction)
                ],
            )
        table = "\n".join(
            f"| {f.column} | {importance.get(f.column, 0.0):.3f} | {f.method} | {f.score:.4f} | "
            f"{f.threshold:.4f} | {'**drifted**' if f.drifted else 'no'} |"
            for f in (*result.features, result.prediction)
        )
        yield dg.MaterializeResult(
            metadata={
                "drifted_importance_share": share,
                "drift_share": result.drift_share,
                "drifted_features": result.drifted_features,
                "prediction_drift_score": result.prediction.score,
                "prediction_drifted": result.prediction.drifted,
                **{f"drift_score/{f.column}": f.score for f in result.features},
                "model_version": version.version,
                "scored_rows": result.current_rows_total,
                "compared_rows": result.current_rows,
                "reference_rows": result.reference_rows,
                "sampled": result.sampled,
                "report": dg.MetadataValue.url(reports.link(html)),
                "report_path": dg.MetadataValue.path(str(html)),
                "columns": dg.MetadataValue.md(
                    "| column | importance | test | score | threshold | drifted |\n"
                    "|---|---:|---|---:|---:|---|\n" + table
                ),
            }
        )
        yield dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=verdict.passed,
            severity=_severity(verdict),
            description=verdict.reason,
            metadata={
                "drifted_importance_share": share,
                "drift_share": result.drift_share,
                "day": day,
                "model_version": version.version,
            },
        )

    performance_assets = []
    if rule.performance is not None:
        performance_assets.append(_performance_asset(spec, common))
    return [drift, *performance_assets]


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
        check_specs=[
            dg.AssetCheckSpec(
                PERFORMANCE_CHECK,
                asset=k["performance"],
                description=(
                    f"{rule.metric} no more than {rule.warn_decay:.0%} worse than on the version's "
                    f"test window (WARN beyond, ERROR beyond {rule.error_decay:.0%}: the model "
                    "retrains)."
                ),
            )
        ],
        **common,
    )
    def performance(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_tracking: MlflowTracking,
    ):
        from ml_assets.monitoring.judge import judge_performance, realised_metrics

        day = context.partition_key
        keys = ", ".join(spec.keys)
        value = f"l.{label.column}"
        if label.known_at:
            # as known when the label matured: a later report does not count
            value = f"({value} and coalesce(l.{label.known_at} <= l.{label.matures_at}, true))"
        joined = f"from scores.{name} s join {label.table} l using ({keys})"
        with warehouse.connect(read_only=True) as con:
            rows = con.sql(
                f"select s.score, s.model_version, cast({value} as double) as label, "
                f"l.{label.matures_at} as matures_at {joined} "
                "where cast(s.event_time as date) = $1",
                params=[day],
            ).to_arrow_table()
            ((data_until,),) = con.sql(
                f"select max({spec.event_time}) from {spec.feature_set}"
            ).fetchall()
            if rows.num_rows == 0:
                raise dg.Failure(f"{name}: nothing scored on {day}, so no performance to measure")
            matures_at = max(rows.column("matures_at").to_pylist())
            # The newest event's day has landed whole: data reaches midnight after it.
            data_until = _day_after(data_until) if data_until is not None else None
            if data_until is None or matures_at > data_until:
                raise dg.Failure(
                    f"{name}: the labels of {day} mature at {matures_at}, but "
                    f"{spec.feature_set} holds data up to {data_until}; materialise this day "
                    "after that"
                )
            version_number = sorted(set(rows.column("model_version").to_pylist()))[-1]
            # The check judges the trailing window (this day and the days before it that the
            # same version scored and whose labels have matured): one day is too few positives.
            first_day = (date.fromisoformat(day) - timedelta(days=rule.window_days - 1)).isoformat()
            window = con.sql(
                f"select s.score, cast({value} as double) as label {joined} "
                "where cast(s.event_time as date) between $1 and $2 and s.model_version = $3 "
                f"and l.{label.matures_at} <= $4",
                params=[first_day, day, version_number, data_until],
            ).to_arrow_table()
        y = rows.column("label").to_numpy()
        p = rows.column("score").to_numpy()
        version = mlflow_tracking.version_of(spec.registered_model_name, version_number)
        test_metrics = json.loads(version.tags.get("headwater.test_metrics", "{}"))
        metrics = realised_metrics(spec, y, p)
        window_y = window.column("label").to_numpy()
        window_metrics = realised_metrics(spec, window_y, window.column("score").to_numpy())
        window_positives = int(window_y.sum()) if spec.objective == "binary" else None
        positives = int(y.sum()) if spec.objective == "binary" else None
        reference = float(test_metrics.get(rule.metric, float("nan")))
        seen = day <= version.tags.get("headwater.trained_through", "")
        verdict = judge_performance(
            rule,
            reference,
            window_metrics[rule.metric],
            len(window_y),
            window_positives,
            seen_in_training=seen,
        )
        computed_at = datetime.now(UTC).replace(tzinfo=None)
        with warehouse.connect() as con:
            _replace_rows(
                con,
                "performance",
                "model varchar, day date, model_version varchar, metric varchar, value double, "
                "test_window_value double, computed_at timestamp",
                name,
                day,
                [
                    (name, day, version.version, m, v, test_metrics.get(m), computed_at)
                    for m, v in metrics.items()
                ],
            )
        context.log.info(f"{name} {day}: {verdict.reason}")
        yield dg.MaterializeResult(
            metadata={
                **{m: float(v) for m, v in metrics.items()},
                f"test_window_{rule.metric}": reference,
                f"trailing_{rule.window_days}d_{rule.metric}": float(window_metrics[rule.metric]),
                f"trailing_{rule.window_days}d_rows": len(window_y),
                "model_version": version.version,
                "seen_in_training": seen,
                "rows": len(y),
                **({"positives": positives} if positives is not None else {}),
                "labels_matured_at": str(matures_at),
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
