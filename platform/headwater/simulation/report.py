"""What the simulation reports: a row per day, what retraining bought, the table and the JSON."""

import json
from dataclasses import asdict, dataclass, field
from datetime import date

import dagster as dg

from headwater.simulation.loop import Loop
from headwater_core import names


@dataclass
class DayReport:
    day: str
    drift_share: float | None = None
    drift_check: str = ""
    realised: str = ""
    champion: str = ""
    actions: list[str] = field(default_factory=list)


@dataclass
class SimulationResult:
    config: dict
    days: list[DayReport]
    comparison: dict
    seconds: float


# -- reading the day's outcome -----------------------------------------------------------------


def _latest_partition_metadata(instance, key: dg.AssetKey, partition: str) -> dict | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _drift_check(instance, key: dg.AssetKey) -> str:
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(key, names.DRIFT_CHECK), limit=1
    )
    if not history or history[0].event is None:
        return ""
    evaluation = history[0].event.asset_check_evaluation
    if evaluation.passed:
        return "ok"
    return evaluation.severity.value.lower()


def report_day(loop: Loop, spec, day: str, actions: list[str]) -> DayReport:
    """The day's drift, the realised performance measured that day, and the champion after it."""
    from ml_assets.models.tracking import MlflowTracking

    keys = {role: dg.AssetKey(key) for role, key in names.model_keys(spec.name).items()}
    drift = _latest_partition_metadata(loop.instance, keys["drift"], day) or {}
    drift_share = drift.get("drifted_importance_share")
    metric = spec.monitoring.performance.metric
    realised = []
    for line in actions:
        if line.startswith("monitor: performance"):
            measured_day = line.split()[3]
            meta = _latest_partition_metadata(loop.instance, keys["performance"], measured_day)
            if meta and metric in meta:
                version = meta["model_version"]
                realised.append(f"{meta[metric]:.3f} ({measured_day[5:]}, v{version})")
    champion = MlflowTracking().version_by_alias(spec.registered_model_name, names.CHAMPION)
    return DayReport(
        day=day,
        drift_share=drift_share,
        drift_check=_drift_check(loop.instance, keys["drift"]) if drift else "",
        realised=", ".join(realised),
        champion=f"v{champion.version}" if champion else "none",
        actions=actions,
    )


def compare(loop: Loop, spec, since: date, first_version: str = "1") -> dict:
    """What retraining bought: on the matured days since `since` that a retrained champion
    scored, the realised metrics of the scores as served against the first champion's scores of
    the same rows."""
    from ml_assets.models.evaluate import metrics_for
    from ml_assets.models.spec import ident, table_ref
    from ml_assets.models.tracking import MlflowTracking, load_booster
    from ml_assets.models.train import predict, to_frame

    label = spec.label
    keys = ", ".join(ident(k) for k in spec.keys)
    features, labels = table_ref(spec.feature_set), table_ref(label.table)
    with loop.resources["warehouse"].connect(read_only=True) as con:
        rows = con.sql(
            f"select f.*, s.score as _served, s.model_version as _version, "
            f"cast(l.{ident(label.column)} as double) as _label "
            f"from {table_ref(names.scores_table(spec.name))} s "
            f"join {features} f using ({keys}) join {labels} l using ({keys}) "
            f"where s.model_version <> $1 and cast(s.event_time as date) >= $2 "
            f"and l.{ident(label.matures_at)} <= "
            f"(select max({ident(spec.event_time)}) from {features})",
            params=[first_version, since.isoformat()],
        ).to_arrow_table()
    if rows.num_rows == 0:
        return {"note": "no day scored by a retrained champion has matured labels yet"}
    y = rows.column("_label").to_numpy()
    old = load_booster(MlflowTracking(), spec.registered_model_name, first_version)
    days = sorted({str(d) for d in rows.column(spec.score_date).to_pylist()})
    versions = sorted({int(v) for v in rows.column("_version").to_pylist()})
    return {
        "days": f"{days[0]}..{days[-1]}",
        "rows": rows.num_rows,
        "positives": int(y.sum()),
        "served_by": [f"v{v}" for v in versions],
        "served (retrained champions)": metrics_for(spec, y, rows.column("_served").to_numpy()),
        f"first champion v{first_version} on the same rows": metrics_for(
            spec, y, predict(old, to_frame(rows, spec))
        ),
    }


# -- printing ----------------------------------------------------------------------------------

HEADER = (
    "| day | drifted importance | drift check | realised ROC-AUC (day, version) | champion | "
    "what the automation did, and why |\n|---|---:|---|---|---|---|"
)


def row(report: DayReport) -> str:
    share = f"{report.drift_share:.0%}" if report.drift_share is not None else ""
    interesting = [a for a in report.actions if not a.startswith("landing:")]
    return (
        f"| {report.day} | {share} | {report.drift_check} | {report.realised} | "
        f"{report.champion} | {'<br>'.join(interesting)} |"
    )


def render(result: SimulationResult) -> str:
    lines = [HEADER, *(row(r) for r in result.days)]
    if result.comparison:
        lines.append("")
        lines.append("What retraining bought (matured days served by a retrained champion):")
        for key, value in result.comparison.items():
            if isinstance(value, dict):
                value = ", ".join(f"{m} {v:.3f}" for m, v in value.items())
            lines.append(f"- {key}: {value}")
    lines.append(f"\n{len(result.days)} days in {result.seconds:.0f} s")
    return "\n".join(lines)


def to_json(result: SimulationResult) -> str:
    return json.dumps(asdict(result), indent=2, default=str)
