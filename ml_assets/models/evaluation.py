"""A challenger's evaluation: challenger, champion and the decile baseline on the same test
window, each model by its held-out twin, and the promotion gate's decision.

The maths is in `evaluate` (pure); this module fetches the boosters from the registry, assembles
the result and says how it is recorded (version tags, the evaluation file, a metrics table).
"""

import json
from dataclasses import dataclass

from headwater_core.names import (
    CHALLENGER,
    CHAMPION,
    TAG_GATE,
    TAG_GATE_CHAMPION_VERSION,
    TAG_GATE_METRICS,
    TAG_GATE_REASON,
)
from ml_assets.models.evaluate import (
    Decision,
    baseline_metrics,
    decide,
    metrics_on_test_window,
)
from ml_assets.models.registry import require_complete
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking, load_judged
from ml_assets.models.train import split_of, to_frame


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
        return json.dumps({**vars(self), "decision": vars(self.decision)}, indent=2, default=str)

    def gate_tags(self) -> dict[str, str]:
        """The decision as recorded on the challenger version's tags."""
        return {
            TAG_GATE: "passed" if self.decision.promote else "refused",
            TAG_GATE_REASON: self.decision.reason,
            TAG_GATE_CHAMPION_VERSION: self.champion_version or "",
            TAG_GATE_METRICS: json.dumps(self.metrics, sort_keys=True),
        }


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

    frame = to_frame(table, spec)
    metrics: dict[str, dict[str, float] | None] = {
        "challenger": metrics_on_test_window(
            spec, table, frame, load_judged(tracking, name, challenger)
        ),
        # The champion's held-out twin stopped learning before this test window began (its own
        # validation window ended earlier); its refit may have trained on these very rows.
        "champion": (
            metrics_on_test_window(spec, table, frame, load_judged(tracking, name, champion))
            if champion is not None
            else None
        ),
        "baseline": baseline_metrics(spec, table, frame),
    }
    decision = decide(
        spec.promotion, metrics["challenger"], metrics["champion"], metrics["baseline"]
    )
    return Evaluation(
        challenger_version=challenger.version,
        champion_version=champion.version if champion is not None else None,
        metrics=metrics,
        test_rows=int((split_of(table) == "test").sum()),
        decision=decision,
    )


def metrics_markdown(rows: dict[str, dict[str, float] | None], metrics: tuple[str, ...]) -> str:
    """A markdown table: one row per model, one column per metric (— for a missing model)."""
    header = "| | " + " | ".join(metrics) + " |\n|---|" + "---:|" * len(metrics) + "\n"
    lines = []
    for who, values in rows.items():
        cells = [f"{values[m]:.4f}" if values else "—" for m in metrics]
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    return header + "\n".join(lines)
