"""The import contracts of pyproject.toml ([tool.importlinter]) hold on the real tree, and bite:
on a tiny copy of the layout, each forbidden import breaks the contract that forbids it.

import-linter runs in this process (its use case, as `lint-imports` calls it); its report is
printed, so a failure shows the offending import chains.
"""

import sys
from pathlib import Path

import pytest
from importlinter import configuration
from importlinter.application import use_cases

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
ROOT_PACKAGES = ("headwater_core", "data_platform", "ml_assets", "headwater", "fraud_demo", "bench")

CONTRACT_IDS = (
    "layers",
    "core-stands-alone",
    "platform-without-demo",
    "config-and-names-without-dagster",
    "floor-without-dagster",
)
# The layout in miniature: each module the contracts name, and the one declared exception.
TINY_TREE = {
    "headwater_core/__init__.py": "",
    "headwater_core/config.py": "",
    "headwater_core/names.py": "",
    "headwater_core/resources.py": "import dagster\n",
    "data_platform/__init__.py": "",
    "data_platform/demo_feed.py": "from fraud_demo import feed, project\n",
    "ml_assets/__init__.py": "",
    "headwater/__init__.py": "",
    "headwater/cli.py": "import data_platform\nimport ml_assets\nimport headwater_core\n",
    "fraud_demo/__init__.py": "",
    "fraud_demo/feed.py": "",
    "fraud_demo/project.py": "",
    "bench/__init__.py": "",
    "bench/floor.py": "import data_platform\nimport ml_assets\n",
}


def importlinter_section(pyproject: str) -> str:
    """The [tool.importlinter] tables of a pyproject.toml, as text."""
    lines, inside = [], False
    for line in pyproject.splitlines():
        if line.startswith("["):
            inside = line.strip("[]").startswith("tool.importlinter")
        if inside:
            lines.append(line)
    return "\n".join(lines) + "\n"


def lint(config: Path, *contracts: str) -> bool:
    """Whether the contracts (all, or those ids) are kept, as `lint-imports` decides."""
    configuration.configure()  # what the command line does first
    return use_cases.lint_imports(
        config_filename=str(config), limit_to_contracts=contracts, cache_dir=None, no_logo=True
    )


def test_the_tree_keeps_every_contract():
    assert lint(PYPROJECT), "import contracts broken: see the report above"


@pytest.fixture
def tiny_tree(tmp_path, monkeypatch) -> Path:
    """A tiny tree with the project's contracts, importable in place of the real packages."""
    for name, text in TINY_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "pyproject.toml").write_text(importlinter_section(PYPROJECT.read_text()))
    # import-linter finds a package where the import system would: first in sys.modules.
    for name in ROOT_PACKAGES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_the_tiny_tree_keeps_every_contract(tiny_tree):
    assert lint(tiny_tree / "pyproject.toml")


def broken(config: Path) -> set[str]:
    return {contract for contract in CONTRACT_IDS if not lint(config, contract)}


@pytest.mark.parametrize(
    ("module", "text", "contracts"),
    [
        ("data_platform/leak.py", "import ml_assets\n", {"layers"}),
        ("ml_assets/leak.py", "from data_platform import demo_feed\n", {"layers"}),
        ("data_platform/leak.py", "import headwater\n", {"layers"}),
        ("headwater_core/leak.py", "import data_platform\n", {"layers", "core-stands-alone"}),
        (
            "headwater_core/leak.py",
            "import fraud_demo\n",
            {"core-stands-alone", "platform-without-demo"},
        ),
        ("ml_assets/leak.py", "import fraud_demo.feed\n", {"platform-without-demo"}),
        ("data_platform/leak.py", "import fraud_demo.feed\n", {"platform-without-demo"}),
        ("headwater_core/names.py", "import dagster\n", {"config-and-names-without-dagster"}),
        (
            "headwater_core/config.py",
            "from . import resources\n",
            {"config-and-names-without-dagster"},
        ),
        ("bench/floor.py", "import dagster\n", {"floor-without-dagster"}),
    ],
    ids=[
        "data_platform->ml_assets",
        "ml_assets->data_platform",
        "data_platform->headwater",
        "headwater_core->data_platform",
        "headwater_core->fraud_demo",
        "ml_assets->fraud_demo",
        "data_platform->fraud_demo-elsewhere",
        "names->dagster",
        "config->resources->dagster",
        "floor->dagster",
    ],
)
def test_a_forbidden_import_breaks_its_contracts(tiny_tree, module, text, contracts):
    path = tiny_tree / module
    path.write_text((path.read_text() if path.exists() else "") + text)
    assert broken(tiny_tree / "pyproject.toml") == contracts
