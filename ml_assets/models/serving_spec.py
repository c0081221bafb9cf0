"""The `serving` block of a model spec: how the shadow challenger is compared with the champion
on served traffic, and whether the promotion gate listens to that comparison. No Dagster.

serving:
  shadow:
    window_days: 28          # served days pooled by the comparison, up to the measured one
    min_labelled_rows: 500   # matured, paired requests before the served comparison counts
    min_positives: 10        # ... and, for a classifier, positive labels among them
    gate: true               # promotion also needs the served comparison's lower bound to
                             # clear promotion.min_improvement (once the counts above are met)

The interval's level and resamples are the promotion block's, so the served comparison and the
offline gate read their bounds the same way.
"""

from dataclasses import dataclass, field
from typing import Any

from ml_assets.models.spec_block import block_mapping


@dataclass(frozen=True)
class ShadowSpec:
    """The champion-vs-challenger comparison on served traffic."""

    window_days: int = 28
    min_labelled_rows: int = 500
    min_positives: int = 10
    gate: bool = False
    """Promotion requires the served comparison to clear the margin, when it has enough rows."""


@dataclass(frozen=True)
class ServingSpec:
    shadow: ShadowSpec = field(default_factory=ShadowSpec)


def parse_serving(raw: Any, where: str) -> ServingSpec:
    """The spec's `serving` mapping as a ServingSpec; a bad value is a ValueError naming the key."""
    if raw is None:
        return ServingSpec()
    if not isinstance(raw, dict) or set(raw) - {"shadow"}:
        raise ValueError(f"{where}: serving must be a mapping with the one key `shadow`")
    shadow = block_mapping(raw.get("shadow") or {}, ShadowSpec, where, "serving.shadow")
    rule = ShadowSpec(**shadow)
    for key in ("window_days", "min_labelled_rows", "min_positives"):
        value = getattr(rule, key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{where}: serving.shadow.{key} must be an integer >= 1 ({value!r})")
    if not isinstance(rule.gate, bool):
        raise ValueError(f"{where}: serving.shadow.gate must be true or false ({rule.gate!r})")
    return ServingSpec(shadow=rule)
