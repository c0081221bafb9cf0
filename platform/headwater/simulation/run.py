"""`simulate`: the history as a first backfill, then the days one by one through the automation."""

import os
import time as clock
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg

from headwater.dagster_internals import frozen_clock
from headwater.simulation.config import MAX_TICKS_PER_DAY, TICK_TIME, SimulationConfig
from headwater.simulation.loop import QUIET, Loop
from headwater.simulation.report import (
    HEADER,
    DayReport,
    SimulationResult,
    compare,
    report_day,
    row,
)
from headwater.simulation.world import generate_world, land, prepare_home
from headwater_core import names


def simulate(
    home: Path, config: SimulationConfig, echo: Callable[[str], None] = print
) -> SimulationResult:
    """Play `config` in a fresh state folder `home`, echoing the history's summary and a table
    row per day."""
    started = clock.perf_counter()
    prepare_home(home, config)
    incoming = generate_world(home, config)
    landing = Path(os.environ["HEADWATER_LANDING_DIR"])
    loop = Loop(config.model)
    (spec,) = loop.specs

    history_end = config.first_day - timedelta(days=1)
    land(incoming, landing, history_end)
    backfill_history(loop, config.start_date, history_end)
    echo(
        f"history {config.start_date}..{history_end} materialised in "
        f"{clock.perf_counter() - started:.0f} s; champion v1 trained"
    )

    echo(HEADER)
    reports: list[DayReport] = []
    for index in range(config.days):
        day = config.first_day + timedelta(days=index)
        land(incoming, landing, day)
        report = report_day(loop, spec, day.isoformat(), play_day(loop, day))
        reports.append(report)
        echo(row(report))

    comparison = compare(loop, spec, config.drift_starts or config.first_day) if reports else {}
    return SimulationResult(
        config={k: str(v) for k, v in asdict(config).items()},
        days=reports,
        comparison=comparison,
        seconds=clock.perf_counter() - started,
    )


def backfill_history(loop: Loop, first: date, last: date) -> None:
    """The history, as a first backfill: raw to scores in one range run, then the first
    champion; the sensors and automation start after it."""
    from headwater.headless import materialize_range

    # Just after midnight: the last history day is complete, so its partition exists.
    bootstrap = datetime.combine(last + timedelta(days=1), time(0, 5), tzinfo=UTC)
    with frozen_clock(bootstrap):
        result = materialize_range(
            first.isoformat(),
            last.isoformat(),
            instance=loop.instance,
            selection=dg.AssetSelection.assets(*(k for a in loop.assets for k in a.keys))
            - dg.AssetSelection.groups(names.MONITORING),
            run_config=QUIET,
        )
        if not result.success:
            raise RuntimeError(f"the history backfill failed: {result.failure}")
        # What the backfill did is not news (its matured days trained the first champion:
        # their performance would not be realised).
        loop.start_after(bootstrap)


def play_day(loop: Loop, day: date) -> list[str]:
    """Tick the morning after `day` until nobody asks for a run (at most MAX_TICKS_PER_DAY
    ticks, five minutes apart); returns what each tick did."""
    now = datetime.combine(day + timedelta(days=1), TICK_TIME, tzinfo=UTC)
    actions: list[str] = []
    for tick in range(MAX_TICKS_PER_DAY):
        runs_before = len(loop.runs)
        at = now + timedelta(minutes=5 * tick)
        with frozen_clock(at):
            actions += loop.tick(at)
        if len(loop.runs) == runs_before:
            break
    return actions
