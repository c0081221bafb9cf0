"""A model spec's asset keys as Dagster keys: `headwater_core.names.model_keys`, wrapped."""

import dagster as dg

from headwater_core.names import model_keys


def keys_of(name: str) -> dict[str, dg.AssetKey]:
    """The asset keys one model spec produces, by role, in lineage order."""
    return {role: dg.AssetKey(key) for role, key in model_keys(name).items()}
