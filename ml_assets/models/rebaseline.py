"""A champion's monitoring baseline moved to the window a refused challenger was judged on.

When the gate refuses a challenger trained on newer data, the champion has just been examined on
the newest test window: a fresh model does no better there, so the drift the champion shows
against its own (older) training window is not hurting it, and its metric on that test window is
what is achievable now. With `monitoring.rebaseline_on_refusal` (the default) the champion's drift
reference becomes the challenger's (the newest training days) scored by the champion, and its
decay baseline its metric on the challenger's test window.

`rebaseline` is the plain rule (no MLflow; `headwater replay` calls it too); `BASELINE` names
the version tag that records it, and `baseline_metrics` / `reference_artifact` are what
monitoring reads, falling back to the version's own test metrics and drift reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from headwater_core.names import REFERENCE_ARTIFACT, TAG_TEST_METRICS
from ml_assets.models.spec import ModelSpec
from ml_assets.models.train import predict

# The champion version's tag: {"from_version", "test_metrics", "reference_artifact", "at"}.
BASELINE = "headwater.baseline"


@dataclass(frozen=True)
class Baseline:
    """A champion's monitoring baseline re-based on a refused challenger's windows."""

    from_version: str
    """the refused challenger whose windows the baseline now comes from"""
    test_metrics: dict[str, float]
    """the champion's metrics on the challenger's test window (the decay check's baseline)"""
    reference: object
    """the challenger's drift reference rows scored by the champion (pandas)"""


def applies(spec: ModelSpec, decision, champion_metrics: dict[str, float] | None) -> bool:
    """Whether the gate's `decision` re-bases the champion: the spec says so, a champion was
    judged, and the challenger was refused for want of a gain, not for being broken (worse
    than the baseline: its windows say nothing of the champion)."""
    return (
        spec.monitoring.rebaseline_on_refusal
        and champion_metrics is not None
        and not decision.promote
        and not decision.broken
    )


def rebaseline(
    spec: ModelSpec,
    decision,
    champion_metrics: dict[str, float] | None,
    champion_booster,
    challenger_version: str,
    challenger_reference,
) -> Baseline | None:
    """The champion's new baseline after the gate's `decision` (`evaluate.Decision`), or None
    when the rule does not apply (`applies`).

    `champion_metrics` are the champion's metrics on the challenger's test window (the gate's
    `metrics["champion"]`); `champion_booster` is the champion's served model, which scores the
    challenger's drift reference (`challenger_reference`, its features and its own `score`) so
    that prediction drift compares the champion's scores with the champion's scores."""
    if not applies(spec, decision, champion_metrics):
        return None
    features = challenger_reference[list(spec.features)]
    return Baseline(
        from_version=str(challenger_version),
        test_metrics={k: float(v) for k, v in champion_metrics.items()},
        reference=features.assign(score=predict(champion_booster, features)),
    )


def rebased_artifact(from_version: str) -> str:
    """Where a re-based drift reference is stored with the champion's run."""
    return f"{REFERENCE_ARTIFACT.rpartition('/')[0]}/rebased_from_v{from_version}.parquet"


def baseline_tag(baseline: Baseline, at: str) -> str:
    """The BASELINE tag's value for a re-based champion."""
    return json.dumps(
        {
            "from_version": baseline.from_version,
            "test_metrics": baseline.test_metrics,
            "reference_artifact": rebased_artifact(baseline.from_version),
            "at": at,
        },
        sort_keys=True,
    )


def _baseline(tags: dict[str, str]) -> dict:
    raw = tags.get(BASELINE)
    return json.loads(raw) if raw else {}


def baseline_metrics(tags: dict[str, str]) -> dict[str, float]:
    """The test metrics a version's decay is judged against: the re-based ones if a refused
    challenger moved them, else the version's own."""
    rebased = _baseline(tags).get("test_metrics")
    return rebased if rebased else json.loads(tags.get(TAG_TEST_METRICS) or "{}")


def reference_artifact(tags: dict[str, str]) -> str:
    """The artifact (of the version's run) holding its drift reference: the re-based one if a
    refused challenger moved it, else the version's own."""
    return _baseline(tags).get("reference_artifact") or REFERENCE_ARTIFACT
