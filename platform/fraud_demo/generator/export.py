"""The processor's export of a day's payments: the transactions file's columns, typed as the
contract declares them."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraud_demo.generator import catalog
from fraud_demo.generator.transactions import Payments
from fraud_demo.generator.world import World


def transactions_table(world: World, day_index: int, payments: Payments) -> pa.Table:
    """The processor's export of one day's payments, in the column order of the contract."""
    day_start = np.int64(world.config.day_start(day_index))
    return pa.table(
        {
            "transaction_id": transaction_ids(world.config.date_of(day_index), len(payments)),
            "customer_id": world.customers.ids.take(payments.customer),
            "merchant_id": world.merchants.ids.take(payments.merchant),
            "amount": cents_to_decimal(payments.amount_cents),
            "currency": pa.repeat("EUR", len(payments)),
            "channel": pa.array(catalog.CHANNELS).take(payments.channel),
            "region_code": pa.array(catalog.REGIONS).take(payments.region),
            "transacted_at": pa.array(day_start + payments.second, type=pa.timestamp("s")),
        }
    )


def transaction_ids(day: date, n: int) -> pa.StringArray:
    """Ids "t" + YYYYMMDD + an 8-digit sequence number: unique across days, stable across runs."""
    numbers = pa.array(np.arange(n, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(f"t{day:%Y%m%d}", pc.utf8_lpad(numbers, 8, "0"), "")


def cents_to_decimal(cents: np.ndarray) -> pa.Array:
    """Whole cents as an exact decimal(12, 2) array.

    Arrow stores a decimal128 as a 16-byte little-endian integer of the unscaled value, so
    non-negative cents are the low 8 bytes and zeros the high 8: no float ever rounds.
    """
    words = np.zeros((len(cents), 2), dtype="<i8")
    words[:, 0] = cents
    return pa.Array.from_buffers(pa.decimal128(12, 2), len(cents), [None, pa.py_buffer(words)])
