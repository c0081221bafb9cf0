"""Point-in-time correctness of the ML feature models, end to end on real DuckDB files and dbt.

A generated 90-day world is loaded into raw and built once (the session's `fraud_world`). Then
everything from the cut-off T on is changed in raw (amounts, deleted and extra transactions, late
chargebacks for older transactions) and the features are rebuilt from scratch: whatever a feature
row "as of" before T shows must not move, because nothing from T on may reach it. The matured
fraud labels are checked for completeness on the generated data.
"""

import math
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.fraud_world import WORLD, build_features

# The cut-off: a Monday (an as_of_date of the weekly features) 75 days in.
T = datetime(2025, 3, 17)
T_SQL = f"timestamp '{T:%Y-%m-%d %H:%M:%S}'"

SNAPSHOTS = {
    # rows whose every input is strictly before T
    "transaction_features": (
        f"select * from features.transaction_features where transacted_at < {T_SQL} "
        "order by transaction_id"
    ),
    "customer_weekly_features": (
        f"select * from features.customer_weekly_features where as_of_date <= {T_SQL} "
        "order by customer_id, as_of_date"
    ),
    # matured labels as known at T: the label windows closed by T
    "customer_spend_labels": (
        f"select * from features.customer_spend_labels where label_matures_at <= {T_SQL} "
        "order by customer_id, as_of_date"
    ),
    "fraud_labels_known_at_t": (
        "select transaction_id, coalesce(chargeback_reported_at <= "
        f"{T_SQL}, false) as is_fraud_at_t "
        f"from features.fraud_labels where label_matures_at <= {T_SQL} order by transaction_id"
    ),
}


def _query(database: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _snapshot(database: Path) -> dict[str, list[tuple]]:
    return {name: _query(database, sql) for name, sql in SNAPSHOTS.items()}


def _change_everything_from_t_on(database: Path) -> dict[str, int]:
    """Rewrite raw from T on the way late-arriving and corrected data would; how many rows."""
    con = duckdb.connect(str(database))
    try:
        changed = {}
        # chargebacks arriving after T: legitimately late (transactions of the last 50 days
        # before T, within the 60-day promise) and beyond the promise (older than 60 days)
        for name, days_before_t in (("in_promise", "between 1 and 50"), ("late", "> 65")):
            changed[f"chargebacks_{name}"] = con.execute(
                f"""
                insert into raw.chargebacks
                select 'cbx' || t.transaction_id, t.transaction_id, 'stolen_card', t.amount,
                    {T_SQL} + interval 9 hours, 'test', 0,
                    cast({T_SQL} as date), current_timestamp
                from raw.transactions t
                anti join raw.chargebacks c on c.transaction_id = t.transaction_id
                where date_diff('day', cast(t.transacted_at as date), cast({T_SQL} as date))
                    {days_before_t}
                    and hash(t.transaction_id) % 7 = 0
                """
            ).fetchall()[0][0]
        # extra transactions from T on (some at exactly T) for existing customers and merchants
        changed["inserted"] = con.execute(
            f"""
            insert into raw.transactions
            select 'tx' || transaction_id, customer_id, merchant_id, amount * 3, currency,
                channel, region_code,
                case when hash(transaction_id) % 5 = 0 then {T_SQL}
                    else transacted_at + interval 1 hour end,
                'test', 0, _partition_date, current_timestamp
            from raw.transactions
            where transacted_at >= {T_SQL} and hash(transaction_id) % 3 = 0
            """
        ).fetchall()[0][0]
        changed["deleted"] = con.execute(
            f"delete from raw.transactions where transacted_at > {T_SQL} "
            "and hash(transaction_id) % 4 = 0"
        ).fetchall()[0][0]
        changed["updated"] = con.execute(
            f"update raw.transactions set amount = amount * 10 where transacted_at >= {T_SQL}"
        ).fetchall()[0][0]
        return changed
    finally:
        con.close()


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory, fraud_world):
    """(database, snapshots before and after the change, rows changed per kind, fraud_labels
    rows (transaction_id, chargeback_reported_at, label_matures_at) of the generated data)."""
    tmp = tmp_path_factory.mktemp("feature_leakage")
    database = tmp / "warehouse.duckdb"
    shutil.copyfile(fraud_world, database)
    before = _snapshot(database)
    fraud_labels = _query(
        database,
        "select transaction_id, chargeback_reported_at, label_matures_at "
        "from features.fraud_labels",
    )
    changed = _change_everything_from_t_on(database)
    build_features(database, tmp, "--full-refresh")
    after = _snapshot(database)
    return database, before, after, changed, fraud_labels


def _same_rows(before: list[tuple], after: list[tuple]) -> bool:
    def same(a, b) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return a == b

    return len(before) == len(after) and all(
        len(x) == len(y) and all(same(a, b) for a, b in zip(x, y, strict=True))
        for x, y in zip(before, after, strict=True)
    )


def test_the_change_after_t_is_real(rebuilt):
    database, _, _, changed, _ = rebuilt
    assert all(n > 0 for n in changed.values()), changed
    # it reaches the features of T and later, so the comparison below can fail
    assert (
        _query(
            database,
            f"select count(*) from features.transaction_features where transacted_at = {T_SQL}",
        )[0][0]
        > 0
    )


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_rows_before_t_do_not_change_when_data_from_t_on_does(rebuilt, snapshot):
    _, before, after, _, _ = rebuilt
    assert len(before[snapshot]) > 100
    if not _same_rows(before[snapshot], after[snapshot]):
        pairs = zip(before[snapshot], after[snapshot], strict=False)
        differ = [(b, a) for b, a in pairs if not _same_rows([b], [a])]
        pytest.fail(
            f"{snapshot}: {len(before[snapshot])} rows before, {len(after[snapshot])} after; "
            f"first differences (before, after): {differ[:3]}"
        )


def test_the_snapshot_covers_the_matured_merchant_fraud_rate(rebuilt):
    database, before, _, _, _ = rebuilt
    rates = _query(
        database,
        "select count(merchant_fraud_rate_matured), "
        "count(*) filter (where merchant_fraud_rate_matured > 0) "
        f"from features.transaction_features where transacted_at < {T_SQL}",
    )[0]
    assert rates[0] > 500 and rates[1] > 100, rates
    assert len(before["customer_weekly_features"]) > 1_000


def test_matured_fraud_labels_are_complete(rebuilt):
    """With any cut-off C, a row whose label has matured by C (label_matures_at <= C) has its
    chargeback, if any, reported by C: a training job that keeps only matured rows has final
    labels."""
    _, _, _, _, fraud_labels = rebuilt
    first, last = WORLD.start_date, WORLD.end_date
    cutoffs = [
        datetime.combine(first + timedelta(days=n), datetime.min.time())
        for n in range((last - first).days + 2)
    ]
    matured_fraud = 0
    for cutoff in cutoffs:
        matured = [row for row in fraud_labels if row[2] <= cutoff]
        assert not [row for row in matured if row[1] is not None and row[1] > cutoff], cutoff
        matured_fraud = max(matured_fraud, sum(row[1] is not None for row in matured))
    assert matured_fraud > 20
