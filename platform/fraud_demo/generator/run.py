"""Generating a landing folder: simulate day by day, write each day's files as it completes.

Files, all under the landing folder (dates are YYYY-MM-DD):

- `transactions/transactions_<day>.csv` or `.parquet`: one per day of the window. The format
  of a day is a seeded coin (`rng_for(seed, FILE_FORMAT, day)`) that comes up Parquet with
  probability `parquet_share`: the processor exports through two paths. Because the coin
  depends only on the seed and the day, a longer window keeps every shared day's format.
- `chargebacks/chargebacks_<day>.csv`: one per day of the window, holding the chargebacks the
  processor received that day. A day without any still gets a header-only file, so every daily
  partition exists. Chargebacks due after the last day have not arrived and are not written.
- `customers/customers_<last day>.parquet` and `merchants/merchants_<last day>.csv`: one full
  snapshot each, as of the end of the last day. They are written first, so reference data is
  there before the transactions that point to it.

Every run rewrites all files of its window from scratch, or, given `first_day`, the daily files
from that day on. Day d depends only on the seed, the daily volume and d (plus the days before
it, for chargebacks), so a run with a longer window and the same daily volume writes identical
transaction and chargeback files for the shared days.

Landing one day at a time: `generate(config, landing, first_day=config.end_date)` for each new
`end_date` (same daily volume) writes only that day's two daily files, simulating the days
before it in memory for the chargebacks they still owe. The daily files then end up
byte-identical to those of one run over the whole window. The snapshots are written on every
call, dated its last day: customers keep signing up, so a landing zone fed day by day gets a
fresh CRM and acquirer export with each delivery (the platform loads the newest), and holds one
snapshot per delivery where a one-shot run holds one. Each of them is the snapshot a one-shot
run ending that day writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from fraud_demo.generator.chargebacks import PendingChargebacks, new_chargebacks
from fraud_demo.generator.config import GeneratorConfig, Stream, rng_for
from fraud_demo.generator.corruption import corrupt_transactions
from fraud_demo.generator.export import transactions_table
from fraud_demo.generator.population import customers_table, merchants_table, snapshot_end
from fraud_demo.generator.transactions import simulate_payments
from fraud_demo.generator.world import World, build_world
from fraud_demo.generator.writer import landing_path, write_table


@dataclass(frozen=True, eq=False)
class SimulatedDay:
    """One simulated day: its clean export, the ground truth, and the chargebacks that arrived."""

    day: date
    transactions: pa.Table  # clean, in contract column order
    is_fraud: np.ndarray  # bool per transaction row: the truth the chargebacks reveal
    chargebacks: pa.Table  # the chargebacks received this day (for earlier days' payments)
    file_format: str  # "csv" or "parquet": how the processor delivers this day
    chargebacks_pending: int  # decided by the end of this day, arriving on a later day


@dataclass(frozen=True)
class GenerationSummary:
    """What a call to `generate` wrote (counts cover the days written)."""

    landing_dir: Path
    files_written: dict[str, int]  # by kind: transactions, chargebacks, customers, merchants
    transactions: int
    frauds: int  # fraudulent transactions (ground truth, disputed or not)
    chargebacks_written: int
    chargebacks_pending: int  # decided, but due after the last day
    bad_rows: int
    elapsed_seconds: float

    @property
    def fraud_share(self) -> float:
        """Fraudulent share of the transactions."""
        return self.frauds / self.transactions if self.transactions else 0.0


def simulate(
    config: GeneratorConfig, world: World | None = None, first_day: date | None = None
) -> Iterator[SimulatedDay]:
    """Simulate the window day by day, in memory one day plus the pending chargebacks.

    With `first_day`, only the days from it on are yielded. The days before it are still
    simulated, from the earliest one whose payments can be disputed on or after `first_day`
    (`max_report_delay_days` back): every day draws from its own seeded streams, so nothing
    earlier changes what those days owe.
    """
    world = world or build_world(config)
    first_index = _day_index(config, first_day)
    pending = PendingChargebacks()
    for day_index in range(max(0, first_index - config.max_report_delay_days), config.days):
        payments = simulate_payments(world, day_index)
        transactions = transactions_table(world, day_index, payments)
        chargebacks, arrival_day = new_chargebacks(
            world, day_index, payments, transactions["transaction_id"].combine_chunks()
        )
        pending.add(chargebacks, arrival_day)
        # Delays are at least one day, so what arrives today was filed by earlier days.
        arrived = pending.pop(day_index)
        if day_index < first_index:
            continue
        yield SimulatedDay(
            day=config.date_of(day_index),
            transactions=transactions,
            is_fraud=payments.is_fraud,
            chargebacks=arrived,
            file_format=day_file_format(config, day_index),
            chargebacks_pending=len(pending),
        )


def _day_index(config: GeneratorConfig, first_day: date | None) -> int:
    """The index of `first_day` in the window (0 if None); a day outside the window fails."""
    if first_day is None:
        return 0
    if not config.start_date <= first_day <= config.end_date:
        raise ValueError(
            f"first_day {first_day} is outside the window {config.start_date}..{config.end_date}"
        )
    return (first_day - config.start_date).days


def day_file_format(config: GeneratorConfig, day_index: int) -> str:
    """The format the processor delivers day `day_index` in (a seeded coin per day)."""
    coin = rng_for(config.seed, Stream.FILE_FORMAT, day_index).random()
    return "parquet" if coin < config.parquet_share else "csv"


def generate(
    config: GeneratorConfig,
    landing_dir: Path | str,
    progress: bool = True,
    first_day: date | None = None,
) -> GenerationSummary:
    """Write the landing files of `config`'s window into `landing_dir`; see the module doc.

    With `first_day` (within the window), only the daily files from that day on are written,
    plus the snapshots as of the last day; the summary counts what was written.
    """
    started = time.perf_counter()
    landing_dir = Path(landing_dir)
    world = build_world(config)
    days_written = config.days - _day_index(config, first_day)

    as_of = snapshot_end(config)
    write_table(
        customers_table(world.customers, as_of),
        landing_path(landing_dir, "customers", config.end_date, "parquet"),
    )
    write_table(
        merchants_table(world.merchants, as_of),
        landing_path(landing_dir, "merchants", config.end_date, "csv"),
    )

    transactions = frauds = chargebacks = bad_rows = pending = 0
    days = simulate(config, world, first_day)
    for simulated in tqdm(
        days, total=days_written, desc="generating", unit="day", disable=not progress
    ):
        table = simulated.transactions
        day_index = (simulated.day - config.start_date).days
        if simulated.file_format == "csv" and config.bad_row_share > 0:
            rng = rng_for(config.seed, Stream.BAD_ROWS, day_index)
            table, bad = corrupt_transactions(table, rng, config.bad_row_share)
            bad_rows += bad
        write_table(
            table, landing_path(landing_dir, "transactions", simulated.day, simulated.file_format)
        )
        write_table(
            simulated.chargebacks, landing_path(landing_dir, "chargebacks", simulated.day, "csv")
        )
        transactions += table.num_rows
        frauds += int(simulated.is_fraud.sum())
        chargebacks += simulated.chargebacks.num_rows
        pending = simulated.chargebacks_pending

    return GenerationSummary(
        landing_dir=landing_dir,
        files_written={
            "transactions": days_written,
            "chargebacks": days_written,
            "customers": 1,
            "merchants": 1,
        },
        transactions=transactions,
        frauds=frauds,
        chargebacks_written=chargebacks,
        chargebacks_pending=pending,
        bad_rows=bad_rows,
        elapsed_seconds=time.perf_counter() - started,
    )


def generate_if_absent(
    config: GeneratorConfig, landing_dir: Path | str, progress: bool = True
) -> GenerationSummary | None:
    """`generate`, unless `landing_dir` already holds transaction files (then None)."""
    existing = Path(landing_dir) / "transactions"
    if existing.is_dir() and any(existing.glob("transactions_*.*")):
        return None
    return generate(config, landing_dir, progress=progress)
