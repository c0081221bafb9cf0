"""A challenger's evaluation: challenger, champion and the decile baseline on the same test
window, each model by its held-out twin, and the promotion gate's decision.

The maths is in `evaluate` (pure); this module fetches the boosters from the registry, assembles
the result and says how it is recorded (version tags, the evaluation file, a metrics table).
"""

import json
from dataclasses import asdict, dataclass

from headwater_core.names import (
    CHALLENGER,
    CHAMPION,
    TAG_GATE,
    TAG_GATE_CHAMPION_VERSION,
    TAG_GATE_METRICS,
    TAG_GATE_REASON,
    TAG_GATE_TEST,
)
from ml_assets.models.bootstrap import Interval, paired_improvement
from ml_assets.models.evaluate import (
    Decision,
    baseline_predictions,
    decide,
    metrics_for,
    test_predictions,
)
from ml_assets.models.registry import require_complete
from ml_assets.models.spec import ModelSpec
from ml_assets.models.tracking import MlflowTracking, load_judged
from ml_assets.models.train import LABEL_COLUMN, split_of, to_frame


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


def judge_on_test_window(
    spec: ModelSpec, table, challenger, champion=None
) -> tuple[dict[str, dict[str, float] | None], int, Decision]:
    """The gate on the test window of the training set `table`: the metrics of the
    `challenger` and `champion` boosters (their held-out twins) and of the decile baseline on
    the same test rows, the number of rows, and the decision with its paired intervals."""
    frame = to_frame(table, spec)
    label = table.column(LABEL_COLUMN).to_numpy()[split_of(table) == "test"]
    # Every model predicts the same test rows, so the gate compares them row by row (paired).
    # The champion's held-out twin stopped learning before this test window began (its own
    # validation window ended earlier); its refit may have trained on these very rows.
    predictions = {
        "challenger": test_predictions(table, frame, challenger),
        "champion": test_predictions(table, frame, champion) if champion is not None else None,
        "baseline": baseline_predictions(spec, table, frame),
    }
    metrics: dict[str, dict[str, float] | None] = {
        who: metrics_for(spec, label, p) if p is not None else None
        for who, p in predictions.items()
    }

    def paired(old) -> Interval:
        rule = spec.promotion
        return paired_improvement(
            rule.metric,
            label,
            predictions["challenger"],
            old,
            confidence=rule.confidence,
            resamples=rule.resamples,
            seed=int(spec.lightgbm.get("seed", 0)),
            top_k_share=spec.top_k_share,
            stratified=spec.objective == "binary",
        )

    decision = decide(
        spec.promotion,
        metrics["challenger"],
        metrics["champion"],
        metrics["baseline"],
        improvement=paired(predictions["champion"]) if champion is not None else None,
        over_baseline=paired(predictions["baseline"]),
    )
    return metrics, len(label), decision


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
