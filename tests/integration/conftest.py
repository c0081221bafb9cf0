"""Integration tests run against the real dbt project: its manifest is parsed (if the project
changed) once, before the first of them."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The dbt manifest, parsed once per session if the project changed."""
    from headwater_core.dbt.project import ensure_manifest

    return ensure_manifest()


@pytest.fixture(scope="session")
def fraud_world(tmp_path_factory) -> Path:
    """A 90-day fraud world (tests/fraud_world.py) loaded and built once: its warehouse file,
    which a test copies before changing anything."""
    from tests.fraud_world import built_world

    return built_world(tmp_path_factory.mktemp("fraud_world"))
