"""A live demo landing zone: generated once up to yesterday, then fed one day at a time.

`headwater dev` starts the demo with `start_demo` and records the generator config it used in
`<landing>/.headwater_demo.json`. `feed_demo` (the demo feed job, and `headwater dev` on each
start) extends the recorded window to a later last day at the same daily volume, writes only the
new days (see `run`: they come out as a one-shot run over the longer window would write them)
and records the longer window. A landing folder without the record was filled by someone else
and is never written to.

The record is a dotted file in the landing folder's root, so no landing pattern matches it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from fraud_demo.generator.config import GeneratorConfig
from fraud_demo.generator.run import GenerationSummary, generate, generate_if_absent

DEMO_RECORD = ".headwater_demo.json"


@dataclass(frozen=True)
class FeedResult:
    """What `feed_demo` did: the recorded last day before and after, and what it wrote."""

    previous_end: date
    end: date
    summary: GenerationSummary | None  # None when no day was missing

    @property
    def days_landed(self) -> int:
        return (self.end - self.previous_end).days


def yesterday_utc() -> date:
    """The last complete day in UTC: the newest daily partition, so the newest day to land."""
    return datetime.now(UTC).date() - timedelta(days=1)


def record_path(landing_dir: Path | str) -> Path:
    return Path(landing_dir) / DEMO_RECORD


def read_record(landing_dir: Path | str) -> GeneratorConfig | None:
    """The recorded demo config, or None if the folder is not a demo landing zone."""
    path = record_path(landing_dir)
    if not path.exists():
        return None
    return GeneratorConfig.from_dict(json.loads(path.read_text()))


def write_record(landing_dir: Path | str, config: GeneratorConfig) -> None:
    """Record `config` as the demo's, atomically (a reader sees the old record or the new)."""
    path = record_path(landing_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def with_whole_daily_volume(config: GeneratorConfig) -> GeneratorConfig:
    """`config` with its total rounded to a whole number of transactions per day.

    A window can only be extended day by day if the daily volume stays exactly the same (it
    decides the population and every day's count), and `transactions / days` must then be the
    same number for every `days`.
    """
    per_day = max(1, round(config.transactions / config.days))
    return replace(config, transactions=per_day * config.days)


def extended_to(config: GeneratorConfig, last_day: date) -> GeneratorConfig:
    """`config`'s window extended to end on `last_day`, at the same daily volume."""
    if config.transactions % config.days:
        raise ValueError(
            f"the demo record's volume ({config.transactions} transactions over {config.days} "
            "days) is not a whole number per day, so the window cannot be extended without "
            "changing the days already landed"
        )
    days = (last_day - config.start_date).days + 1
    return replace(config, days=days, transactions=config.transactions // config.days * days)


def start_demo(
    config: GeneratorConfig, landing_dir: Path | str, progress: bool = True
) -> GenerationSummary | None:
    """Generate `config` into an empty landing folder and record it; None if not empty.

    The total is rounded to a whole daily volume first (`with_whole_daily_volume`), so that
    the feed can extend the window later.
    """
    config = with_whole_daily_volume(config)
    summary = generate_if_absent(config, landing_dir, progress=progress)
    if summary is not None:
        write_record(landing_dir, config)
    return summary


def feed_demo(
    landing_dir: Path | str, last_day: date | None = None, progress: bool = False
) -> FeedResult | None:
    """Land the demo's missing days up to `last_day` (default yesterday, UTC).

    None if the folder has no demo record. Idempotent: once the record reaches `last_day`,
    nothing is written. If it stops between writing days and updating the record, the next call
    writes the same days again, byte for byte.
    """
    recorded = read_record(landing_dir)
    if recorded is None:
        return None
    last_day = last_day or yesterday_utc()
    if last_day <= recorded.end_date:
        return FeedResult(recorded.end_date, recorded.end_date, None)
    config = extended_to(recorded, last_day)
    first_new = recorded.end_date + timedelta(days=1)
    summary = generate(config, landing_dir, progress=progress, first_day=first_new)
    write_record(landing_dir, config)
    return FeedResult(recorded.end_date, config.end_date, summary)
