"""What to generate: the run configuration, the drift scenarios and the seeded random streams."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import numpy as np

from fraud_demo.generator import catalog

#: The drift scenarios the generator knows, by name, with what each one changes.
DRIFT_SCENARIOS: Mapping[str, str] = MappingProxyType(
    {
        "crypto_wave": (
            "From its start day a new merchant category, crypto_exchange, appears (its merchants "
            "are onboarded that day), all amounts shift up by 30%, and a new fraud pattern starts: "
            "daytime online fraud at crypto exchanges in the cardholder's home region, for "
            "small-to-mid amounts, which a model trained before the onset has never seen."
        ),
    }
)

# Relative transaction volume per weekday (Monday first): shoppers spend more on Friday and
# Saturday and less on Sunday. The seven factors sum to 7, so a full week averages the daily rate.
WEEKDAY_VOLUME = (0.95, 0.95, 0.97, 1.00, 1.10, 1.13, 0.90)


@dataclass(frozen=True)
class DriftScenario:
    """A named change in the simulated world that begins on `starts_on` and lasts to the end."""

    name: str
    starts_on: date

    def __post_init__(self) -> None:
        if self.name not in DRIFT_SCENARIOS:
            known = ", ".join(sorted(DRIFT_SCENARIOS))
            raise ValueError(f"unknown drift scenario {self.name!r} (known: {known})")


@dataclass(frozen=True)
class GeneratorConfig:
    """One generated landing folder: the window, its volume, the seed and the optional extras.

    `transactions` is the total over the window. Customer and merchant counts default to a size
    derived from the daily volume (not the total), so that a longer window with the same daily
    volume simulates the same population and its shared days come out identical.
    """

    seed: int = 42
    start_date: date = date(2025, 1, 1)
    days: int = 30
    transactions: int = 20_000
    n_customers: int | None = None
    n_merchants: int | None = None
    fraud_rate: float = 0.01
    drift: DriftScenario | None = None
    bad_row_share: float = 0.0
    # Share of days the processor delivers as Parquet instead of CSV (a seeded coin per day).
    parquet_share: float = 0.5
    # The longest a cardholder takes to dispute a fraud, in days: the processor's promise, after
    # which a payment's label is final. A short one (14) lets a simulation see labels mature
    # within two weeks; the delay distribution below the cap is the same.
    max_report_delay_days: int = catalog.MAX_REPORT_DELAY_DAYS

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.transactions < 1:
            raise ValueError("transactions must be >= 1")
        if self.n_customers is not None and self.n_customers < 1:
            raise ValueError("n_customers must be >= 1")
        if self.n_merchants is not None and self.n_merchants < 12:
            raise ValueError("n_merchants must be >= 12 (one per base category)")
        if not 0.0 <= self.fraud_rate <= 0.5:
            raise ValueError("fraud_rate must be within [0, 0.5]")
        if not 0.0 <= self.bad_row_share <= 0.5:
            raise ValueError("bad_row_share must be within [0, 0.5]")
        if not 0.0 <= self.parquet_share <= 1.0:
            raise ValueError("parquet_share must be within [0, 1]")
        if self.max_report_delay_days < 1:
            raise ValueError("max_report_delay_days must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values (dates as YYYY-MM-DD); `from_dict` reads it back."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["start_date"] = self.start_date.isoformat()
        if self.drift is not None:
            values["drift"] = {
                "name": self.drift.name,
                "starts_on": self.drift.starts_on.isoformat(),
            }
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GeneratorConfig:
        """The config `to_dict` wrote; missing keys take their defaults, unknown keys fail."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys: {unknown}")
        values = dict(values)
        if "start_date" in values:
            values["start_date"] = date.fromisoformat(values["start_date"])
        if values.get("drift") is not None:
            drift = values["drift"]
            values["drift"] = DriftScenario(drift["name"], date.fromisoformat(drift["starts_on"]))
        return cls(**values)

    @property
    def end_date(self) -> date:
        """The last generated day (the date of the customer and merchant snapshots)."""
        return self.start_date + timedelta(days=self.days - 1)

    @property
    def daily_rate(self) -> float:
        """Average number of transactions per day."""
        return self.transactions / self.days

    @property
    def customer_count(self) -> int:
        """Customers in the population: about one month (30 days) of transactions / 40."""
        if self.n_customers is not None:
            return self.n_customers
        return int(np.clip(round(self.daily_rate * 30 / 40), 200, 500_000))

    @property
    def merchant_count(self) -> int:
        """Merchants in the population (before any drift adds new ones): customers / 20."""
        if self.n_merchants is not None:
            return self.n_merchants
        return int(np.clip(round(self.customer_count / 20), 50, 20_000))

    def date_of(self, day_index: int) -> date:
        """The calendar date of day `day_index` (0 is `start_date`)."""
        return self.start_date + timedelta(days=day_index)

    def day_start(self, day_index: int) -> int:
        """Midnight of day `day_index`, in seconds since the Unix epoch (naive, no time zone)."""
        return epoch_seconds(self.date_of(day_index))

    def transactions_on(self, day_index: int) -> int:
        """Number of transactions (legit plus fraud, before drift) on day `day_index`.

        It is the difference of a rounded cumulative volume, so it depends only on the daily rate
        and the day, never on the window length, and the window total stays within a day's worth
        of rounding of `transactions` (exact when `days` is a multiple of 7).
        """
        return round(self.daily_rate * self._volume_before(day_index + 1)) - round(
            self.daily_rate * self._volume_before(day_index)
        )

    def drift_active(self, day_index: int) -> bool:
        """Whether the drift scenario is in force on day `day_index`."""
        return self.drift is not None and self.date_of(day_index) >= self.drift.starts_on

    def _volume_before(self, day_index: int) -> float:
        """Sum of the weekday volume factors of the days before `day_index`."""
        first_weekday = self.start_date.weekday()
        full_weeks, rest = divmod(day_index, 7)
        partial = sum(WEEKDAY_VOLUME[(first_weekday + k) % 7] for k in range(rest))
        return 7.0 * full_weeks + partial


class Stream(IntEnum):
    """The independent random streams; each part of the simulation draws only from its own."""

    CUSTOMERS = 0
    MERCHANTS = 1
    LEGIT = 2
    FRAUD = 3
    CHARGEBACKS = 4
    FILE_FORMAT = 5
    BAD_ROWS = 6
    DRIFT = 7
    DRIFT_MERCHANTS = 8


def rng_for(seed: int, stream: Stream, day_index: int = 0) -> np.random.Generator:
    """The random generator of one stream on one day.

    Keying every stream by (seed, stream, day) means a day's draws never depend on how many
    numbers other days or other streams used: that is what makes a longer window reproduce the
    shared days, and a drift leave the days before its onset untouched.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(stream), day_index)))


def epoch_seconds(day: date) -> int:
    """Midnight of `day` in seconds since the Unix epoch (naive timestamps, no time zone)."""
    return int((datetime(day.year, day.month, day.day) - datetime(1970, 1, 1)).total_seconds())
