"""A feature set and its label table in an in-memory DuckDB, for the training-set unit tests."""

from datetime import datetime, timedelta

import duckdb


def feature_warehouse(
    spec, first: datetime, days: int, per_day: int, step: timedelta, matures_after: timedelta
) -> duckdb.DuckDBPyConnection:
    """`spec`'s feature set with `per_day` rows a day, `step` apart, for `days` days from
    `first`, every feature 1, and its label table: one row in 7 is positive; a label matures
    `matures_after` after its row."""
    con = duckdb.connect()
    con.execute("create schema features")
    columns = [c for c in spec.features if c not in (*spec.keys, spec.event_time)]
    times = [first + timedelta(days=d) + h * step for d in range(days) for h in range(per_day)]
    con.execute(
        f"create table {spec.feature_set} as select i as transaction_id, t as transacted_at, "
        + ", ".join(f"1 as {c}" for c in columns)
        + " from (select unnest(range(?)) as i, unnest(?) as t)",
        [len(times), times],
    )
    con.execute(
        f"create table {spec.label.table} as select transaction_id, "
        "transaction_id % 7 = 0 as is_fraud, transacted_at as chargeback_reported_at, "
        f"transacted_at + interval {matures_after.days} days as label_matures_at "
        f"from {spec.feature_set}"
    )
    return con
