"""Bad rows for demos: the kinds of damage a hand-rolled CSV export really produces.

Only CSV days are damaged (a typed Parquet file cannot hold "12,50€" as an amount). The chosen
rows (a seeded sample) are dealt out evenly over the five kinds below.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraud_demo.generator.population import DAY

#: The kinds of damage, in the order they are dealt out over the chosen rows.
CORRUPTIONS = (
    "null_customer_id",  # customer_id is empty
    "unparseable_amount",  # amount written the local way, e.g. "12,50€"
    "unknown_channel",  # channel is "moto" (mail/telephone order), not in the contract
    "duplicate_transaction_id",  # transaction_id copied from another row of the same file
    "timestamp_outside_day",  # transacted_at one day before the file's day
)
UNKNOWN_CHANNEL = "moto"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def corrupt_transactions(
    table: pa.Table, rng: np.random.Generator, share: float
) -> tuple[pa.Table, int]:
    """Damage round(`share` x rows) rows of a day's transactions; return the table and the count.

    `amount` and `transacted_at` become text columns (formatted as the clean CSV writes them),
    since the damaged values are no longer numbers or timestamps.
    """
    n = table.num_rows
    n_bad = round(share * n) if n >= 2 else 0
    if n_bad == 0:
        return table, 0
    rows = rng.choice(n, size=n_bad, replace=False)
    # Deal the kinds out in turn from a random first kind, so that a day with fewer bad rows
    # than kinds still gets a fair mix over the days.
    kind = (np.arange(n_bad) + rng.integers(len(CORRUPTIONS))) % len(CORRUPTIONS)

    def mask(name: str) -> pa.Array:
        flags = np.zeros(n, dtype=bool)
        flags[rows[kind == CORRUPTIONS.index(name)]] = True
        return pa.array(flags)

    customer_id = pc.if_else(
        mask("null_customer_id"), pa.scalar(None, pa.string()), table["customer_id"]
    )
    amount = pc.cast(table["amount"], pa.string())
    local_amount = pc.binary_join_element_wise(pc.replace_substring(amount, ".", ","), "€", "")
    amount = pc.if_else(mask("unparseable_amount"), local_amount, amount)
    channel = pc.if_else(mask("unknown_channel"), UNKNOWN_CHANNEL, table["channel"])

    # Each duplicated row takes the id of another, randomly chosen row.
    source = np.arange(n)
    duplicated = rows[kind == CORRUPTIONS.index("duplicate_transaction_id")]
    source[duplicated] = (duplicated + rng.integers(1, n, size=len(duplicated))) % n
    transaction_id = table["transaction_id"].take(source)

    transacted_at = table["transacted_at"]
    day_before = pa.array(
        transacted_at.to_numpy().astype("datetime64[s]") - np.timedelta64(DAY, "s"),
        type=pa.timestamp("s"),
    )
    transacted_at = pc.if_else(mask("timestamp_outside_day"), day_before, transacted_at)

    replacements = {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "amount": amount,
        "channel": channel,
        "transacted_at": pc.strftime(transacted_at, TIMESTAMP_FORMAT),
    }
    for name, column in replacements.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table, n_bad
