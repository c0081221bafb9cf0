"""The check every model-spec block module makes of its mapping before reading it: a mapping,
with no key its dataclass does not have. No Dagster."""

from dataclasses import fields
from typing import Any


def block_mapping(raw: Any, cls: type, where: str, name: str) -> dict:
    """`raw` if it is a mapping whose keys are all fields of `cls`; else a ValueError naming the
    block (`name`, e.g. `serving.shadow`) and its first unknown key."""
    known = [f.name for f in fields(cls)]
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: {name} must be a mapping (keys: {known})")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{where}: {name}.{unknown[0]} is not a known key ({known})")
    return raw
