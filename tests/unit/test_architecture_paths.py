"""Every repository path that ARCHITECTURE.md names in backticks exists.

A word in backticks is taken for a path when it has a file extension of the repository's own
(.py, .yml, .yaml, .sql, .md, .toml) or starts with one of its top-level folders. URLs, globs,
placeholders (`<name>`), absolute paths and asset keys (`raw/transactions`, no extension and no
top-level folder) are not paths. A path names a file or folder from the repository root; one
that does not start with a top-level folder may also be relative to the folder holding the
packages (`headwater_core/config.py`), to a package (`raw/contract.py`) or to the dbt project
(`macros/...`); a bare file name (`ingest.py`) must name some file in the tree.
"""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("ARCHITECTURE.md",)
EXTENSIONS = (".py", ".yml", ".yaml", ".sql", ".md", ".toml")
TOP_LEVEL = (
    "platform/",
    "ml_assets/",
    "dbt_project/",
    "tests/",
    "bench/",
    "deploy/",
    "docs/",
    "dagster_instance/",
    ".ci/",
    ".github/",
)
NOT_SOURCE = {".git", ".venv", ".tools", "__pycache__", "target", "logs", "dbt_packages"}

# Remove once ARCHITECTURE.md is rewritten for the new layout.


def named_paths(text: str) -> list[str]:
    """The words in backticks of `text` that are repository paths, in order, once each."""
    found: list[str] = []
    for span in re.findall(r"`([^`\n]+)`", text):
        for word in span.split():
            path = re.sub(r"(::.*|:\d+)$", "", word)  # a test id or a line number
            if is_repo_path(path) and path not in found:
                found.append(path)
    return found


def is_repo_path(word: str) -> bool:
    if "://" in word or word.startswith(("/", "~", "$")):
        return False
    if any(c in word for c in "*?[]{}<>=$"):
        return False
    return word.endswith(EXTENSIONS) or word.startswith(TOP_LEVEL)


def file_names() -> set[str]:
    names = set()
    for _folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in NOT_SOURCE and not d.startswith(".headwater")]
        names.update(files)
    return names


def bases() -> list[Path]:
    """Where a path that does not start with a top-level folder may be relative to."""
    packages = [p for p in (ROOT / "platform").iterdir() if (p / "__init__.py").exists()]
    return [ROOT, ROOT / "platform", ROOT / "dbt_project", ROOT / "ml_assets", *packages]


def exists(path: str, names: set[str]) -> bool:
    if "/" not in path.rstrip("/"):
        return path.rstrip("/") in names or (ROOT / path).exists()
    if path.startswith(TOP_LEVEL):
        return (ROOT / path).exists()
    return any((base / path).exists() for base in bases())


def test_paths_are_recognised():
    text = (
        "`platform/headwater_core/config.py` `raw/transactions` `holdout/model.txt` "
        "`models/<name>/model` `model_specs/*.yml` `postgresql://` `/proc` "
        "`python3 dev.py up` `tests/unit/test_layout.py::test_under_pytest` `docs/` "
        "`marts/fct_transactions` `macros/partition_window.sql`"
    )
    assert named_paths(text) == [
        "platform/headwater_core/config.py",
        "dev.py",
        "tests/unit/test_layout.py",
        "docs/",
        "macros/partition_window.sql",
    ]
    names = file_names()
    assert exists("dev.py", names) and exists("macros/partition_window.sql", names)
    assert exists("headwater_core/config.py", names) and exists("docs/", names)
    assert exists("raw/contract.py", names) and exists("models/spec.py", names)
    assert not exists("platform/nowhere.py", names) and not exists("nowhere.py", names)


@pytest.mark.parametrize("doc", DOCS)
def test_every_named_path_exists(doc):
    paths = named_paths((ROOT / doc).read_text())
    assert paths, f"{doc} names no path: the rules above no longer match it"
    names = file_names()
    missing = [p for p in paths if not exists(p, names)]
    assert not missing, f"{doc} names paths that do not exist: {missing}"
