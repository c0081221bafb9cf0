"""The incremental `features` layer equals a full rebuild, row for row, on real dbt and DuckDB.

The session's 90-day fraud world (built in full) is copied, its daily facts and feature tables
dropped, and built again the way data arrives: the first 70 days in one windowed run, one single
day (a windowed run, as a partition passes it), then the rest in one run without vars (what the
features asset runs: each table from its last loaded day on), and the last two days again as one
window, as a new day's run builds them (transaction_features then joins each transaction to its
customer's earlier ones instead of running its windows). Every feature table must then hold
exactly the rows of the full build (EXCEPT ALL both ways). Between runs chargebacks keep arriving
for earlier transactions, so labels written by an earlier run must have been rewritten.
"""

import shutil
from datetime import timedelta

import duckdb
import pytest

from tests.fraud_world import FEATURES_AND_UPSTREAM, WORLD, dbt

FIRST_RANGE_DAYS = 70  # the matured merchant rate (days D-120 .. D-61) exists from day 61

FEATURE_TABLES = (
    "transaction_features",
    "merchant_daily_label_stats",
    "fraud_labels",
    "customer_weekly_spine",
    "customer_weekly_features",
    "customer_spend_labels",
)


def _day(offset: int) -> str:
    return (WORLD.start_date + timedelta(days=offset)).isoformat()


def _run(*extra: str) -> list[str]:
    return ["run", "--select", FEATURES_AND_UPSTREAM, *extra]


def _window(start: int, end: int) -> list[str]:
    return ["--vars", f"{{min_date: '{_day(start)}', max_date: '{_day(end)}'}}"]


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory, fraud_world):
    """(incremental warehouse, the full build it must equal)."""
    tmp = tmp_path_factory.mktemp("incremental_features")
    incremental = tmp / "incremental.duckdb"
    shutil.copyfile(fraud_world, incremental)
    con = duckdb.connect(str(incremental))
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = 'features' "
            "or (table_schema = 'marts' and table_name like 'fct\\_%' escape '\\')"
        ).fetchall()
        assert len(tables) >= len(FEATURE_TABLES) + 2, tables
        for schema, name in tables:
            con.execute(f"drop table {schema}.{name}")
    finally:
        con.close()
    dbt(incremental, tmp, _run(*_window(0, FIRST_RANGE_DAYS)))
    dbt(incremental, tmp, _run(*_window(FIRST_RANGE_DAYS, FIRST_RANGE_DAYS + 1)))
    dbt(incremental, tmp, _run())  # no vars: from each table's last loaded day on
    last = WORLD.days - 1
    dbt(incremental, tmp, _run(*_window(last - 1, last + 1)))  # the last two days, pairwise
    (compiled,) = (tmp / "target" / "compiled").glob("*/models/features/transaction_features.sql")
    assert "left join transactions as earlier" in compiled.read_text(), "not computed pairwise"
    return incremental, fraud_world


def _query(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchall()


@pytest.mark.parametrize("table", FEATURE_TABLES)
def test_incremental_build_equals_full_build(warehouses, table):
    incremental, full = warehouses
    con = duckdb.connect(str(incremental), read_only=True)
    try:
        con.execute(f"attach '{full}' as full_build (read_only)")
        rows = _query(con, f"select count(*) from features.{table}")[0][0]
        assert rows > 100, f"{table}: {rows} rows"
        assert _query(con, f"select count(*) from full_build.features.{table}")[0][0] == rows
        only_incremental = _query(
            con,
            f"select * from features.{table} except all "
            f"select * from full_build.features.{table} limit 3",
        )
        only_full = _query(
            con,
            f"select * from full_build.features.{table} except all "
            f"select * from features.{table} limit 3",
        )
        assert not only_incremental and not only_full, (only_incremental, only_full)
    finally:
        con.close()


def test_the_comparison_covers_what_changes_after_a_row_is_written(warehouses):
    """The later runs had to rewrite earlier rows (labels whose chargeback came on a later run's
    day), carry a history from before the lookback, and read the matured merchant rate."""
    incremental, _ = warehouses
    later = f"date '{_day(FIRST_RANGE_DAYS)}'"
    con = duckdb.connect(str(incremental), read_only=True)
    try:
        late_labels = _query(
            con,
            "select count(*) from features.fraud_labels where is_fraud "
            f"and transaction_date < {later} and chargeback_reported_at >= {later}",
        )[0][0]
        carried = _query(
            con,
            "select count(*) from features.transaction_features "
            f"where transaction_date >= {later} and seconds_since_customer_prev_txn > 30 * 86400",
        )[0][0]
        rates = _query(
            con,
            "select count(*) from features.transaction_features "
            f"where transaction_date >= {later} and merchant_fraud_rate_matured > 0",
        )[0][0]
        mondays = _query(
            con,
            "select count(distinct as_of_date) from features.customer_weekly_features "
            f"where as_of_date >= {later}",
        )[0][0]
        assert late_labels > 0 and carried > 0 and rates > 0 and mondays >= 2, (
            late_labels,
            carried,
            rates,
            mondays,
        )
    finally:
        con.close()


def test_labels_follow_chargebacks_changed_on_any_day(warehouses, tmp_path):
    """Chargebacks changed after their transactions' labels were written: one taken back (a
    corrected day of chargebacks) and one landed late for a day before the window. The next
    day's run relabels both transactions, however old, and the table again equals a full build
    of the changed data."""
    incremental, _ = warehouses
    changed = tmp_path / "changed.duckdb"
    shutil.copyfile(incremental, changed)
    con = duckdb.connect(str(changed))
    try:
        # a transaction of the first range whose only chargeback came on a later run's day
        found = _query(
            con,
            "select l.transaction_id, c.chargeback_id, c.reported_date "
            "from features.fraud_labels l join marts.fct_chargebacks c using (transaction_id) "
            f"where l.transaction_date < date '{_day(FIRST_RANGE_DAYS)}' "
            f"and c.reported_date >= date '{_day(FIRST_RANGE_DAYS + 5)}' "
            "and l.transaction_id not in (select transaction_id from marts.fct_chargebacks "
            "group by 1 having count(*) > 1) "
            "order by c.reported_date, 1 limit 1",
        )
        assert found, "no late chargeback to take back"
        taken_back, chargeback_id, reported = found[0]
        # a transaction never charged back, older than the window
        ((landed_late,),) = _query(
            con,
            "select transaction_id from features.fraud_labels where not is_fraud "
            f"and transaction_date < date '{_day(FIRST_RANGE_DAYS)}' order by 1 limit 1",
        )
        # its chargeback lands now, reported five days before the day the next run builds
        con.execute(
            "insert into marts.fct_chargebacks select * replace ("
            "'late-' || chargeback_id as chargeback_id, ? as transaction_id, "
            "reported_at - interval 5 days as reported_at, "
            "reported_date - interval 5 days as reported_date) "
            "from marts.fct_chargebacks where chargeback_id = ?",
            [landed_late, chargeback_id],
        )
        con.execute("delete from marts.fct_chargebacks where transaction_id = ?", [taken_back])
    finally:
        con.close()
    day = (reported - WORLD.start_date).days
    # the features of the taken-back chargeback's day only (the changed mart is the input here)
    dbt(changed, tmp_path, ["run", "--select", "path:models/features", *_window(day, day + 1)])
    full = tmp_path / "full.duckdb"
    shutil.copyfile(changed, full)
    dbt(full, tmp_path, ["run", "--select", "fraud_labels", "--full-refresh"])

    con = duckdb.connect(str(changed), read_only=True)
    try:
        labels = dict(
            _query(
                con,
                "select transaction_id, is_fraud from features.fraud_labels "
                f"where transaction_id in ('{taken_back}', '{landed_late}')",
            )
        )
        assert labels == {taken_back: False, landed_late: True}, labels
        con.execute(f"attach '{full}' as full_build (read_only)")
        for left, right in (
            ("features", "full_build.features"),
            ("full_build.features", "features"),
        ):
            only = _query(
                con,
                f"select * from {left}.fraud_labels except all "
                f"select * from {right}.fraud_labels limit 3",
            )
            assert not only, (left, only)
    finally:
        con.close()
