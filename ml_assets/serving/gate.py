"""The promotion gate's served half: with `serving.shadow.gate: true`, a challenger that passed the
offline gate is promoted only if its comparison with the champion on served traffic (the
`headwater.served_comparison` tag the shadow comparison puts on its version) clears the same
margin, once that comparison has enough matured labels. Before that the offline gate decides
alone, and the reason says so.                                                          (pure)
"""

from __future__ import annotations

import math

from ml_assets.models.spec import ModelSpec


def served_gate(spec: ModelSpec, version: str, comparison: dict | None) -> tuple[bool, str]:
    """Whether the served comparison lets `version` be promoted, and why (empty: not asked)."""
    rule = spec.serving.shadow
    if not rule.gate:
        return True, ""
    if not comparison or comparison.get("challenger_version") != version:
        return True, f"no served comparison of version {version} yet: the offline gate decides"
    labelled = comparison.get("labelled") or 0
    if not comparison.get("enough_labels"):
        return True, (
            f"served comparison has {labelled:,} matured labels (the gate needs "
            f"{rule.min_labelled_rows:,}): the offline gate decides"
        )
    lower = comparison.get("lower")
    required = spec.promotion.min_improvement
    said = (
        f"served {comparison.get('metric')} improvement on {labelled:,} matured requests "
        f"({comparison.get('first_day')}..{comparison.get('day')}) "
        f"{comparison.get('improvement'):+.4f} [{lower:+.4f}, {comparison.get('upper'):+.4f}]"
        if lower is not None
        else "served improvement undefined"
    )
    if lower is None or math.isnan(lower) or lower < required or lower <= 0:
        return False, f"{said}: its lower bound does not clear the required {required:.4f}"
    return True, f"{said}: its lower bound clears the required {required:.4f}"
