"""Integration tests run against the real dbt project: its manifest is parsed (if the project
changed) once, before the first of them."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The dbt manifest, parsed once per session if the project changed."""
    from headwater_core.dbt.project import ensure_manifest

    return ensure_manifest()
