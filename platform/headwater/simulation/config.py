"""What one simulation plays: the world's size and drift, and when the automation ticks."""

from dataclasses import dataclass
from datetime import date, time, timedelta

TICK_TIME = time(0, 15)
MAX_TICKS_PER_DAY = 4


@dataclass(frozen=True)
class SimulationConfig:
    days: int = 30
    history_days: int = 35
    transactions_per_day: int = 3000
    drift: bool = True
    drift_on_day: int = 5
    """The simulated day (0-based) the generator's crypto_wave scenario starts."""
    maturity_days: int = 7
    seed: int = 42
    start_date: date = date(2025, 1, 1)
    model: str = "fraud_classifier"

    @property
    def first_day(self) -> date:
        return self.start_date + timedelta(days=self.history_days)

    @property
    def drift_starts(self) -> date | None:
        return self.first_day + timedelta(days=self.drift_on_day) if self.drift else None
