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
