"""Evidently is heavy: importing the drift module, as a code location does, must not import it
(a fresh interpreter, since pytest's may have imported it already)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_module_does_not_import_evidently():
    code = "import ml_assets.monitoring.drift, sys; assert 'evidently' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
