"""A challenger's evaluation: challenger, champion and the decile baseline on the same test
window, each model by its held-out twin, and the promotion gate's decision.

The maths is in `evaluate` (pure); this module fetches the boosters from the registry, assembles
the result and says how it is recorded (version tags, the evaluation file, a metrics table).
"""

import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from headwater_core.names import (
    CHALLENGER,
    CHAMPION,
    REFERENCE_ARTIFACT,
    TAG_GATE,
    TAG_GATE_CHAMPION_VERSION,
    TAG_GATE_METRICS,
    TAG_GATE_REASON,
    TAG_GATE_TEST,
)
from ml_assets.models import rebaseline as rebase
from ml_assets.models.bootstrap import Interval
from ml_assets.models.evaluate import Decision, judge_on_test_window
from ml_assets.models.registry import record, require_complete
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking, load_booster, load_judged


@dataclass(frozen=True)
class Evaluation:
    """The gate's inputs and its decision for one challenger version."""

    challenger_version: str
    champion_version: str | None
    metrics: dict[str, dict[str, float] | None]
    """challenger, champion (None when there is none to compare with) and baseline"""
    test_rows: int
    decision: Decision

    def to_json(self) -> str:
        """The evaluation file's content."""
        return json.dumps(asdict(self), indent=2, default=str)

    def gate_tags(self) -> dict[str, str]:
        """The decision as recorded on the challenger version's tags."""
        return {
            TAG_GATE: "passed" if self.decision.promote else "refused",
            TAG_GATE_REASON: self.decision.reason,
            TAG_GATE_CHAMPION_VERSION: self.champion_version or "",
            TAG_GATE_METRICS: json.dumps(self.metrics, sort_keys=True),
            TAG_GATE_TEST: json.dumps(
                {
                    "vs_champion": _interval(self.decision.improvement),
                    "vs_baseline": _interval(self.decision.over_baseline),
                },
                sort_keys=True,
            ),
        }


def _interval(interval: Interval | None) -> dict | None:
    return asdict(interval) if interval is not None else None


def evaluate_challenger(spec: ModelSpec, table, tracking: MlflowTracking) -> Evaluation:
    """Judge the version holding `challenger` on the test window of the training set `table`.

    Both versions must be completely registered (`registry.require_complete`): a refit version
    without its held-out twin would be judged on rows it trained on."""
    name = spec.registered_model_name
    challenger = tracking.version_by_alias(name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{name} has no challenger: train the model first")
    require_complete(tracking, name, challenger)
    champion = tracking.version_by_alias(name, CHAMPION)
    if champion is not None and champion.version == challenger.version:
        champion = None  # already promoted: compare with nothing but the baseline
    if champion is not None:
        # Judged by its twin too; one promoted before the completion marker existed is fine.
        require_complete(tracking, name, champion, marker=False)

    metrics, test_rows, decision = judge_on_test_window(
        spec,
        table,
        load_judged(tracking, name, challenger),
        load_judged(tracking, name, champion) if champion is not None else None,
    )
    return Evaluation(
        challenger_version=challenger.version,
        champion_version=champion.version if champion is not None else None,
        metrics=metrics,
        test_rows=test_rows,
        decision=decision,
    )


def rebaseline_champion(
    spec: ModelSpec, result: Evaluation, tracking: MlflowTracking
) -> rebase.Baseline | None:
    """After a refusal (`rebaseline.applies`), the champion's monitoring baseline moved to the
    refused challenger's windows and recorded on the champion version: the re-based drift
    reference stored with its run, the `rebaseline.BASELINE` tag naming it and the new test
    metrics. None when the rule does not apply."""
    if not rebase.applies(spec, result.decision, result.metrics["champion"]):
        return None
    name = spec.registered_model_name
    champion = tracking.version_of(name, result.champion_version)
    challenger = tracking.version_of(name, result.challenger_version)
    import mlflow
    import pandas as pd

    client = tracking.client()
    with tempfile.TemporaryDirectory() as folder:
        downloaded = mlflow.artifacts.download_artifacts(
            run_id=challenger.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=folder
        )
        baseline = rebase.rebaseline(
            spec,
            result.decision,
            result.metrics["champion"],
            load_booster(tracking, name, champion.version),
            challenger.version,
            pd.read_parquet(downloaded),
        )
        artifact = Path(rebase.rebased_artifact(baseline.from_version))
        path = Path(folder) / artifact.name
        baseline.reference.to_parquet(path, index=False)
        client.log_artifact(champion.run_id, str(path), artifact_path=str(artifact.parent))
    at = datetime.now(UTC).isoformat(timespec="seconds")
    record(tracking, name, champion.version, {rebase.BASELINE: rebase.baseline_tag(baseline, at)})
    return baseline


def record_decision(spec: ModelSpec, result: Evaluation, tracking: MlflowTracking) -> dict:
    """Record the gate's decision on the challenger version's tags and, after a refusal,
    re-base the champion (`rebaseline_champion`); what the decision's metadata says of the
    champion's baseline (`rebaseline_metadata`)."""
    record(tracking, spec.registered_model_name, result.challenger_version, result.gate_tags())
    return rebaseline_metadata(result, rebaseline_champion(spec, result, tracking))


def rebaseline_metadata(result: Evaluation, baseline: rebase.Baseline | None) -> dict[str, str]:
    """What the gate's decision says of the champion's baseline (empty on a promotion)."""
    if result.decision.promote or result.champion_version is None:
        return {}
    if baseline is None:
        return {"rebaselined": "no"}
    said = ", ".join(f"{k} {v:.4f}" for k, v in sorted(baseline.test_metrics.items()))
    return {
        "rebaselined": (
            f"champion version {result.champion_version}'s drift reference and decay baseline "
            f"moved to version {baseline.from_version}'s windows ({said})"
        )
    }


def gate_metadata(decision: Decision) -> dict[str, float | int | str]:
    """The gate's paired intervals as flat numbers (Dagster plots them over materialisations):
    `improvement*` over the champion, `over_baseline*` over the baseline."""
    out: dict[str, float | int | str] = {}
    for prefix, interval in (
        ("improvement", decision.improvement),
        ("over_baseline", decision.over_baseline),
    ):
        if interval is not None:
            out.update(
                {
                    prefix: interval.value,
                    f"{prefix}_lower": interval.lower,
                    f"{prefix}_upper": interval.upper,
                }
            )
            out["gate_method"] = f"{interval.method}, {interval.confidence:.0%} interval"
            out["gate_rows"] = interval.n
    return out


def metrics_markdown(rows: dict[str, dict[str, float] | None], metrics: tuple[str, ...]) -> str:
    """A markdown table: one row per model, one column per metric (— for a missing model)."""
    header = "| | " + " | ".join(metrics) + " |\n|---|" + "---:|" * len(metrics) + "\n"
    lines = []
    for who, values in rows.items():
        cells = [f"{values[m]:.4f}" if values else "—" for m in metrics]
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    return header + "\n".join(lines)
