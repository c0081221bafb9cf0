"""The `sampling` block of a model spec: at most how many rows of the train window a model is
trained on, and with which seed the rows are drawn. No Dagster.

sampling:
  max_train_rows: 2000000   # above this many matured rows in the train window, sample it
  seed: 0                   # the row hash's seed (another seed: another, equally valid sample)

No block: every matured row trains the model (the training set is what it was without the
rule). The rule itself, in SQL, is `ml_assets.models.sampling`.
"""

from dataclasses import dataclass
from typing import Any

from ml_assets.models.spec_block import block_mapping


@dataclass(frozen=True)
class SamplingSpec:
    """The train window's row budget: a classifier keeps every positive row and a hash sample of
    its negatives, a regressor a hash sample of its rows, at the rate that brings the window to
    about `max_train_rows`; validation and test are never sampled."""

    max_train_rows: int
    seed: int = 0


def parse_sampling(raw: Any, where: str) -> SamplingSpec | None:
    """The spec's `sampling` mapping as a SamplingSpec (None: no block, every row trains); a bad
    value is a ValueError naming the key."""
    if raw is None:
        return None
    block_mapping(raw, SamplingSpec, where, "sampling")
    if "max_train_rows" not in raw:
        raise ValueError(f"{where}: sampling.max_train_rows is missing (the train window's budget)")
    for key, least in (("max_train_rows", 1), ("seed", 0)):
        value = raw.get(key, 0)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
            raise ValueError(f"{where}: sampling.{key} must be an integer >= {least} ({value!r})")
    return SamplingSpec(**raw)
