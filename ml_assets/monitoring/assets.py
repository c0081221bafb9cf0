"""The two monitoring assets every model spec gets, per scored day; a run over a range of days
(a backfill: their policy is a single run) measures each day and judges them together.

    monitoring/<name>/drift        Evidently data drift of the day's features and prediction drift
                                   against the scoring version's training window; HTML + JSON
                                   report; check `drift_below_threshold`
    monitoring/<name>/performance  the day's realised performance on matured labels for the
                                   version that scored it; check `performance_not_decayed`

Both also append to DuckDB (`monitoring.drift`, `monitoring.performance`), so the history can be
queried as well as plotted. The bodies are thin: the steps are plain functions in `measure`, over
`drift` (Evidently) and `judge` (the verdicts).

The same two assets measure served traffic (`serving/<name>/drift`, `/performance`, built by
`ml_assets.serving.assets` with a `Traffic` that names the served predictions' table): same
measurement, metadata and checks, written to `serving.drift` and `serving.performance`.
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from headwater_core.config import reports_dir, reports_url
from headwater_core.names import (
    DRIFT_CHECK,
    DRIFT_TABLE,
    DUCKDB_POOL,
    MONITORING,
    PERFORMANCE_CHECK,
    PERFORMANCE_TABLE,
    TAG_FEATURE_IMPORTANCE,
    TAG_TRAINED_THROUGH,
    table_key,
)
from headwater_core.partitions import partitions_def
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import drift_condition
from ml_assets.automation.keys import keys_of
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.rebaseline import baseline_metrics, reference_artifact
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring import measure
from ml_assets.monitoring import metadata as shown
from ml_assets.monitoring import window as window_
from ml_assets.monitoring.judge import Verdict, range_verdict


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


@dataclass(frozen=True)
class Traffic:
    """What a spec's pair of monitoring assets measures: its batch scores (the default), or the
    predictions it served (`served`: the table of the champion's served rows)."""

    drift_key: dg.AssetKey
    performance_key: dg.AssetKey
    scored_key: dg.AssetKey  # the asset the measured rows come from
    group: str = MONITORING
    served: str | None = None
    drift_table: str = DRIFT_TABLE
    performance_table: str = PERFORMANCE_TABLE
    automation: bool = True  # the batch drift follows new scores unattended

    @property
    def report_folder(self) -> str:
        return "served_drift" if self.served else "drift"

    @property
    def rows(self) -> str:
        return "served predictions" if self.served else "scored window"


def batch_traffic(name: str) -> Traffic:
    k = keys_of(name)
    return Traffic(k["drift"], k["performance"], k["scores"])


def _severity(verdict: Verdict) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if verdict.level == "error" else dg.AssetCheckSeverity.WARN


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
            f"{rule.metric} over the trailing {rule.window_days} days no more than "
            f"{rule.warn_decay:.0%} worse than on the version's test window, clear of noise: "
            f"the best bound of its {rule.confidence:.0%} bootstrap interval decides (WARN "
            f"beyond, ERROR beyond {rule.error_decay:.0%}: the model retrains). Below "
            f"{rule.min_labels} matured labels"
            + (f" or {rule.min_positives} positive" if spec.objective == "binary" else "")
            + ': "not enough labels", not judged.'
        ),
    )


def build_monitoring_assets(
    spec: ModelSpec, traffic: Traffic | None = None
) -> list[dg.AssetsDefinition]:
    """The drift and (with a `monitoring.performance` block) performance assets of a spec's
    batch scores, or of the `traffic` given."""
    traffic = traffic or batch_traffic(spec.name)
    common = {
        "group_name": traffic.group,
        "owners": [spec.owner],
        "partitions_def": partitions_def(),
        # A range of days is one run (a backfill, `headwater monitor`): each day is measured and
        # materialised on its own, and the check judges the run's days together.
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "output_required": False,
        "pool": DUCKDB_POOL,
        "metadata": {"model_spec": dg.MetadataValue.path(spec.source)},
    }
    performance_assets = []
    if spec.monitoring.performance is not None:
        performance_assets.append(_performance_asset(spec, common, traffic))
    return [_drift_asset(spec, common, traffic), *performance_assets]


def _check_result(check_name: str, verdicts: dict[str, Verdict], metadata: dict):
    """The check's one result for the run's days (`verdicts`, by day)."""
    verdict = range_verdict(verdicts)
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=verdict.passed,
        severity=_severity(verdict),
        description=verdict.reason,
        metadata={"day": f"{min(verdicts)}..{max(verdicts)}", **metadata}
        if len(verdicts) > 1
        else metadata,
    )


def _drift_asset(spec: ModelSpec, common: dict, traffic: Traffic) -> dg.AssetsDefinition:
    name = spec.name
    key = traffic.drift_key
    feature_key = dg.AssetKey(table_key(spec.feature_set))
    rule = spec.monitoring.drift

    @dg.asset(
        key=key,
        deps=[traffic.scored_key, feature_key],
        description=(
            f"Drift of `{name}`'s {traffic.rows} up to the day: Evidently's per-column tests on "
            f"the model's features and on its score, against {rule.reference_label} (of the "
            f"version that scored the day). Sampled to {rule.sample_rows:,} rows a side. The "
            "method per feature is in the `columns` table; the HTML report is linked."
        ),
        kinds={"python", "evidently", "duckdb"},
        automation_condition=drift_condition(feature_key) if traffic.automation else None,
        check_specs=[_drift_check_spec(spec, key)],
        **common,
    )
    def drift(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_tracking: MlflowTracking,
        artifacts: ModelArtifacts,
        reports: MonitoringReports,
    ):
        from threadpoolctl import threadpool_limits

        from headwater_core.compute import threads

        verdicts, metadata = {}, {}
        for day in context.partition_keys:
            # Evidently's statistics run on numpy's BLAS, whose pool is sized to every core.
            with threadpool_limits(limits=threads(mlflow_tracking.training_threads)):
                day_metadata, verdict, check_metadata = _drift_of_day(
                    spec, day, traffic, warehouse, mlflow_tracking, artifacts, reports
                )
            verdicts[day], metadata = verdict, check_metadata or metadata
            yield dg.AssetMaterialization(asset_key=key, partition=day, metadata=day_metadata)
        yield _check_result(DRIFT_CHECK, verdicts, metadata)

    return drift


def _drift_of_day(
    spec: ModelSpec,
    day: str,
    traffic: Traffic,
    warehouse: Warehouse,
    mlflow_tracking: MlflowTracking,
    artifacts: ModelArtifacts,
    reports: MonitoringReports,
) -> tuple[dict, Verdict, dict]:
    """Drift of the window ending on one scored day, measured and written: its metadata,
    verdict and check metadata."""
    name, rule = spec.name, spec.monitoring.drift
    with warehouse.connect(read_only=True) as con:
        window = window_.read_scored_window(con, spec, day, traffic.served)
        same_period = (
            measure.scored_frame(window_.read_same_period(con, spec, window), spec)
            if rule.same_period_days is not None and window.day_rows
            else None
        )
    if window.day_rows == 0:
        # Nothing scored that day (a weekly model's off days, or scores not written yet).
        return (
            {"scored_rows": 0},
            Verdict("ok", f"nothing scored on {day}: no drift to measure"),
            {},
        )
    rows = window.rows
    version = mlflow_tracking.version_of(spec.registered_model_name, measure.scoring_version(rows))
    reference = same_period
    if reference is None:
        # the version's own, or the one a refused challenger re-based it on (`rebaseline`)
        reference = measure.load_reference(
            artifacts.folder(name),
            version.version,
            version.run_id,
            mlflow_tracking.resolved_uri(),
            reference_artifact(version.tags),
        )
    importance = json.loads(version.tags.get(TAG_FEATURE_IMPORTANCE, "{}"))
    folder = reports.folder() / name / traffic.report_folder
    html, report_json = folder / f"{day}.html", folder / f"{day}.json"
    measured = measure.measure_drift(
        spec, reference, measure.scored_frame(rows, spec), importance, html, report_json
    )
    with warehouse.connect() as con:
        measure.write_drift(
            con, name, day, version.version, measured.result, importance, traffic.drift_table
        )
    metadata = shown.drift_metadata(
        measured, importance, version.version, window, reports.link(html), html
    )
    verdict = dataclasses.replace(
        measured.verdict, reason=f"{window.label}: {measured.verdict.reason}"
    )
    return metadata, verdict, shown.drift_check_metadata(measured, window, version.version)


def _performance_asset(spec: ModelSpec, common: dict, traffic: Traffic) -> dg.AssetsDefinition:
    name = spec.name
    key = traffic.performance_key
    label = spec.label
    scored = "served days" if traffic.served else "scored days"

    @dg.asset(
        key=key,
        deps=[traffic.scored_key, dg.AssetKey(table_key(label.table))],
        description=(
            f"Realised performance of `{name}` on {scored}, once every label of the day has "
            f"matured ({label.table}.{label.matures_at}), for the model version that scored it. "
            + ("" if traffic.served else "Asked for by the `model_monitor` sensor.")
        ),
        kinds={"python", "duckdb"},
        check_specs=[_performance_check_spec(spec, key)],
        **common,
    )
    def performance(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_tracking: MlflowTracking,
    ):
        days = context.partition_keys
        verdicts, metadata, refused = {}, {}, []
        for day in days:
            try:
                day_metadata, verdict, metadata = _performance_of_day(
                    spec, day, traffic, warehouse, mlflow_tracking
                )
            except measure.NotMeasurable as e:
                # In a range, a weekly model's unscored days are not an error; a day whose labels
                # have not matured is, once the measurable days are recorded.
                if len(days) == 1 or not e.nothing_scored:
                    refused.append(str(e))
                continue
            context.log.info(f"{name} {day}: {verdict.reason}")
            verdicts[day] = verdict
            yield dg.AssetMaterialization(asset_key=key, partition=day, metadata=day_metadata)
        if verdicts:
            yield _check_result(PERFORMANCE_CHECK, verdicts, metadata)
        elif not refused:  # a range without a scored day: the check still answers
            yield dg.AssetCheckResult(
                check_name=PERFORMANCE_CHECK,
                passed=True,
                description=f"nothing scored in {days[0]}..{days[-1]}: no performance to measure",
            )
        if refused:
            more = f" (and {len(refused) - 3} more days)" if len(refused) > 3 else ""
            measured = f"; {len(verdicts)} other day(s) measured" if verdicts else ""
            raise dg.Failure("; ".join(refused[:3]) + more + measured)

    return performance


def _performance_of_day(
    spec: ModelSpec,
    day: str,
    traffic: Traffic,
    warehouse: Warehouse,
    mlflow_tracking: MlflowTracking,
) -> tuple[dict, Verdict, dict]:
    """One scored day's realised performance, measured and written: its metadata, verdict and
    check metadata. Raises measure.NotMeasurable."""
    rule = spec.monitoring.performance
    with warehouse.connect(read_only=True) as con:
        scored = measure.read_performance_day(con, spec, day, traffic.served)
    version = mlflow_tracking.version_of(spec.registered_model_name, scored.version)
    test_metrics = baseline_metrics(version.tags)  # own, or re-based after a refusal
    trained_through = version.tags.get(TAG_TRAINED_THROUGH, "")
    measured = measure.measure_performance(spec, day, scored, test_metrics, trained_through)
    with warehouse.connect() as con:
        measure.write_performance(
            con, spec, day, version.version, measured, test_metrics, traffic.performance_table
        )
    metadata = {
        **{m: float(v) for m, v in measured.metrics.items()},
        **shown.window_metadata(measured, rule),
        "model_version": version.version,
        "seen_in_training": measured.seen_in_training,
        "rows": scored.rows.num_rows,
        **({"positives": measured.positives} if measured.positives is not None else {}),
        "labels_matured_at": str(scored.matures_at),
    }
    check_metadata = {
        "day": day,
        "model_version": version.version,
        **shown.window_metadata(measured, rule),
    }
    return metadata, measured.verdict, check_metadata
