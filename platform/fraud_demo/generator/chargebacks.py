"""Chargebacks: the disputes that reveal fraud, arriving days to weeks after the payment."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraud_demo.generator import catalog
from fraud_demo.generator.config import Stream, rng_for
from fraud_demo.generator.export import cents_to_decimal
from fraud_demo.generator.population import DAY
from fraud_demo.generator.transactions import Payments
from fraud_demo.generator.world import World

CHARGEBACK_SCHEMA = pa.schema(
    [
        ("chargeback_id", pa.string()),
        ("transaction_id", pa.string()),
        ("reason_code", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("reported_at", pa.timestamp("s")),
    ]
)
# The processor receives disputes from issuers during its working day.
REPORT_HOURS = (7, 20)


def new_chargebacks(
    world: World, day_index: int, payments: Payments, transaction_ids: pa.StringArray
) -> tuple[pa.Table, np.ndarray]:
    """The chargebacks the payments of day `day_index` will lead to, and the day each arrives.

    The chargeback id is the transaction id with "cb" for "t": a payment is disputed at most
    once, so it is unique, and it does not depend on which other chargebacks exist.
    """
    disputed = np.flatnonzero(payments.report_delay > 0)
    delay = payments.report_delay[disputed]
    rng = rng_for(world.config.seed, Stream.CHARGEBACKS, day_index)
    first_hour, last_hour = REPORT_HOURS
    time_of_day = rng.integers(first_hour * 3600, last_hour * 3600, size=len(disputed))
    reported_at = world.config.day_start(day_index) + delay * DAY + time_of_day
    ids = transaction_ids.take(disputed)
    table = pa.table(
        {
            "chargeback_id": pc.binary_join_element_wise("cb", pc.utf8_slice_codeunits(ids, 1), ""),
            "transaction_id": ids,
            "reason_code": pa.array(catalog.REASON_CODES).take(payments.reason_code[disputed]),
            "amount": cents_to_decimal(payments.amount_cents[disputed]),
            "reported_at": pa.array(reported_at, type=pa.timestamp("s")),
        },
        schema=CHARGEBACK_SCHEMA,
    )
    return table, day_index + delay


class PendingChargebacks:
    """Chargebacks decided but not yet arrived, filed by the day they will arrive.

    Memory stays bounded: nothing is filed more than `max_report_delay_days` ahead, and a day's
    pile is removed when that day is written.
    """

    def __init__(self) -> None:
        self._by_day: dict[int, list[pa.Table]] = defaultdict(list)

    def add(self, chargebacks: pa.Table, arrival_day: np.ndarray) -> None:
        """File `chargebacks` under their `arrival_day` (day indexes, one per row)."""
        if len(arrival_day) == 0:
            return
        order = np.argsort(arrival_day, kind="stable")
        days, starts = np.unique(arrival_day[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        for day, start, end in zip(days.tolist(), starts, ends, strict=True):
            self._by_day[day].append(chargebacks.take(order[start:end]))

    def pop(self, day_index: int) -> pa.Table:
        """Remove and return the chargebacks arriving on `day_index`, in arrival order."""
        piles = self._by_day.pop(day_index, [])
        if not piles:
            return CHARGEBACK_SCHEMA.empty_table()
        table = pa.concat_tables(piles)
        return table.sort_by([("reported_at", "ascending"), ("chargeback_id", "ascending")])

    def __len__(self) -> int:
        """Number of chargebacks still to arrive."""
        return sum(t.num_rows for piles in self._by_day.values() for t in piles)
