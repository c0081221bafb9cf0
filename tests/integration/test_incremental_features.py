"""The incremental `features` layer equals a full rebuild, row for row, on real dbt and DuckDB.

A generated 150-day world (long enough for the matured merchant rate's days D-120 .. D-61) is
loaded into raw, then built the way data arrives: the marts and features of the first 130 days in
one windowed run, two single days (windowed runs, as Dagster's partitions pass them), then the rest
in one run without vars (what the features asset runs: from each table's last loaded day on). A
copy of that warehouse gets `--full-refresh` of the features, and every feature table must hold
exactly the same rows in both (EXCEPT ALL both ways). Between runs chargebacks keep arriving for
earlier transactions, so labels written before must be rewritten when they change.
"""

import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from data_platform.raw.contract import load_contracts
from data_platform.raw.ingest import ensure_raw_tables, load_file
from data_platform.raw.landing import find_landing_files, newest_snapshot_file
from fraud_demo.generator import GeneratorConfig, generate
from headwater_core.config import dbt_project_dir

WORLD = GeneratorConfig(
    seed=17, start_date=date(2025, 1, 1), days=150, transactions=6_000, fraud_rate=0.03
)
FIRST_RANGE_DAYS = 130
SINGLE_DAYS = 2

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


def _load_raw(landing: Path, database: Path) -> None:
    con = duckdb.connect(str(database))
    try:
        contracts = load_contracts(dbt_project_dir())
        ensure_raw_tables(con, contracts.values())
        for contract in contracts.values():
            if contract.snapshot:
                key, path = newest_snapshot_file(contract, landing)
                load_file(con, contract, path, key)
            else:
                for key, path in find_landing_files(contract, landing).items():
                    load_file(con, contract, path, key)
    finally:
        con.close()


def _dbt(database: Path, tmp: Path, select: str, *extra: str) -> None:
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "run",
            "--select",
            select,
            # a private target and log folder: other dbt runs may be using the project's
            "--target-path",
            str(tmp / "target"),
            "--log-path",
            str(tmp / "logs"),
            *extra,
        ],
        cwd=dbt_project_dir(),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HEADWATER_DUCKDB_PATH": str(database)},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " ERROR=0" in out.stdout, out.stdout[-3000:]


def _window(start: str, end: str) -> list[str]:
    return ["--vars", f"{{min_date: '{start}', max_date: '{end}'}}"]


def _query(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory):
    """(incremental warehouse, full-refresh warehouse, late fraud labels seen per step)."""
    tmp = tmp_path_factory.mktemp("incremental_features")
    incremental, full = tmp / "incremental.duckdb", tmp / "full.duckdb"
    generate(WORLD, tmp / "landing", progress=False)
    _load_raw(tmp / "landing", incremental)
    everything = "+path:models/features"
    _dbt(incremental, tmp, everything, *_window(_day(0), _day(FIRST_RANGE_DAYS)))
    for offset in range(FIRST_RANGE_DAYS, FIRST_RANGE_DAYS + SINGLE_DAYS):
        _dbt(incremental, tmp, everything, *_window(_day(offset), _day(offset + 1)))
    _dbt(incremental, tmp, everything)  # no vars: from each table's last loaded day on
    shutil.copyfile(incremental, full)
    _dbt(full, tmp, "path:models/features", "--full-refresh")
    return incremental, full


@pytest.mark.parametrize("table", FEATURE_TABLES)
def test_incremental_build_equals_full_refresh(warehouses, table):
    incremental, full = warehouses
    con = duckdb.connect(str(incremental), read_only=True)
    try:
        con.execute(f"attach '{full}' as full_refresh (read_only)")
        rows = _query(con, f"select count(*) from features.{table}")[0][0]
        assert rows > 100, f"{table}: {rows} rows"
        assert _query(con, f"select count(*) from full_refresh.features.{table}")[0][0] == rows
        only_incremental = _query(
            con,
            f"select * from features.{table} except all "
            f"select * from full_refresh.features.{table} limit 3",
        )
        only_full = _query(
            con,
            f"select * from full_refresh.features.{table} except all "
            f"select * from features.{table} limit 3",
        )
        assert not only_incremental and not only_full, (only_incremental, only_full)
    finally:
        con.close()


def test_the_comparison_covers_what_changes_after_a_row_is_written(warehouses):
    """The incremental runs had to rewrite earlier rows: labels whose chargeback came on a later
    run's day, a history carried from before the lookback, the matured merchant rate."""
    incremental, _ = warehouses
    con = duckdb.connect(str(incremental), read_only=True)
    try:
        first_run_end = _day(FIRST_RANGE_DAYS)
        late = _query(
            con,
            "select count(*) from features.fraud_labels where is_fraud "
            f"and transaction_date < date '{first_run_end}' "
            f"and chargeback_reported_at >= date '{first_run_end}'",
        )[0][0]
        assert late > 0
        carried = _query(
            con,
            "select count(*) from features.transaction_features "
            f"where transaction_date >= date '{first_run_end}' "
            "and seconds_since_customer_prev_txn > 30 * 86400",
        )[0][0]
        assert carried > 0
        rates = _query(
            con,
            "select count(*) from features.transaction_features "
            f"where transaction_date >= date '{first_run_end}' "
            "and merchant_fraud_rate_matured > 0",
        )[0][0]
        assert rates > 0
        mondays = _query(
            con,
            "select count(distinct as_of_date) from features.customer_weekly_features "
            f"where as_of_date >= date '{first_run_end}'",
        )[0][0]
        assert mondays >= 2
    finally:
        con.close()
