"""`platform/` must never shadow the standard library's `platform` module (in this process; from a
fresh interpreter and inside a code server: tests/integration/test_layout_processes.py)."""

import platform
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def _is_stdlib(path: str) -> bool:
    return Path(path).resolve().parent == STDLIB


def test_platform_folder_is_not_a_package():
    assert (ROOT / "platform").is_dir()
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_under_pytest():
    assert _is_stdlib(platform.__file__)
    assert platform.system() == "Linux"


def test_test_files_have_unique_names_across_tiers():
    # The tier folders are not packages: pytest imports test modules by their file name, so two
    # tiers with a file of the same name fail the whole run at collection.
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
