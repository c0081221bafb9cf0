"""The simulation's world: a fresh state folder, every day's generated files, and landing them."""

import os
import shutil
from datetime import date
from pathlib import Path

from headwater.environment import configure_environment
from headwater.simulation.config import SimulationConfig


def prepare_home(home: Path, config: SimulationConfig) -> Path:
    """A fresh state folder whose environment every resource resolves at run time."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    for variable in ("HEADWATER_DUCKDB_PATH", "HEADWATER_LANDING_DIR", "DAGSTER_HOME"):
        os.environ.pop(variable, None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["HEADWATER_LABEL_MATURITY_DAYS"] = str(config.maturity_days)
    configure_environment(home)
    return home


def generate_world(home: Path, config: SimulationConfig) -> Path:
    """Every day's files, written once into `<home>/incoming`; they land day by day."""
    from fraud_demo.generator import DriftScenario, GeneratorConfig, generate

    total_days = config.history_days + config.days
    incoming = home / "incoming"
    generate(
        GeneratorConfig(
            seed=config.seed,
            start_date=config.start_date,
            days=total_days,
            transactions=config.transactions_per_day * total_days,
            drift=(
                DriftScenario("crypto_wave", config.drift_starts) if config.drift_starts else None
            ),
            max_report_delay_days=config.maturity_days - 1,
        ),
        incoming,
        progress=False,
    )
    return incoming


def land(incoming: Path, landing: Path, up_to: date) -> list[str]:
    """Move every incoming file dated up to `up_to` (and the snapshots) into the landing folder."""
    moved = []
    for path in sorted(incoming.rglob("*.*")):
        stem_date = path.stem.rsplit("_", 1)[-1]
        snapshot = path.parent.name in ("customers", "merchants")
        if snapshot or date.fromisoformat(stem_date) <= up_to:
            target = landing / path.relative_to(incoming)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            moved.append(path.name)
    return moved
