"""Deterministic demo data for card-payment fraud, written as a processor's landing folder.

`generate(GeneratorConfig(...), landing_dir)` simulates customers, merchants, everyday card
payments, fraud bursts and the chargebacks that reveal them, and writes daily files in the raw
contract of dbt_project/models/staging/*/_*__sources.yml. See `run` for the file rules.
"""

from fraud_demo.generator.config import DRIFT_SCENARIOS, DriftScenario, GeneratorConfig
from fraud_demo.generator.run import (
    GenerationSummary,
    SimulatedDay,
    generate,
    generate_if_absent,
    simulate,
)

__all__ = [
    "DRIFT_SCENARIOS",
    "DriftScenario",
    "GenerationSummary",
    "GeneratorConfig",
    "SimulatedDay",
    "generate",
    "generate_if_absent",
    "simulate",
]
