"""The world the `serve` part serves: a generated fraud world whose day D is the traffic.

The world is built as the platform builds it, to the end of the day before D: the landing files
loaded by the raw contract, dbt's staging, marts and features, and the online store written by
the `online/transaction_features` asset itself. Then day D lands and dbt builds it, which gives
what the service must reproduce: D's raw transactions, in time order, are the online leg's
requests (what the source system knows when a payment arrives), and D's rows of the feature
table are the offline features of the same transactions, which the request-carried leg, the
floor and `mlflow models serve` are sent. The champion is trained on the days before D, so it
knows the world's categories. It is the same world as `tests/integration/test_online_parity.py`
at a larger volume (about 570 transactions a day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

# 70 days: the matured merchant fraud rate (days D-120 .. D-61) has data on D.
WORLD_DAYS, WORLD_TRANSACTIONS = 70, 40_000
D = date(2025, 1, 1) + timedelta(days=WORLD_DAYS - 1)
TEST_DAYS = VALIDATION_DAYS = 7  # the champion's split of the days before D


@dataclass(frozen=True)
class ServeWorld:
    store_url: str  # the online store the asset wrote (a SQLite file)
    requests: list[dict]  # D's raw transactions in time order, JSON-ready
    feature_rows: list[dict]  # D's feature table rows in the same order: keys and features
    training: pa.Table  # the days before D, split, for the champion


def jsonable(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _dbt_run(database: Path, folder: Path) -> None:
    from headwater_core.config import dbt_project_dir
    from headwater_core.dbt.in_process import run_dbt_in_process

    project, target = dbt_project_dir(), folder / "target"
    finished = run_dbt_in_process(
        ["run", "--select", "+transaction_features +fraud_labels", "--project-dir",
         str(project), "--profiles-dir", str(project), "--target-path", str(target)],
        {"HEADWATER_DUCKDB_PATH": str(database), "DBT_PROFILES_DIR": str(project),
         "DBT_PROJECT_DIR": str(project)},
        project,
        target,
    )  # fmt: skip
    if finished.returncode != 0:
        raise RuntimeError("dbt run failed:\n" + "\n".join(finished.lines[-20:]))


def _write_store(spec, database: Path, store_url: str) -> None:
    """The `online/<feature_set>` asset, materialised as the graph does after a landed day."""
    import dagster as dg

    from headwater_core.dbt.resource import dbt_cli_resource
    from headwater_core.resources import Warehouse
    from ml_assets.online.assets import OnlineStore, build_online_asset

    result = dg.materialize(
        [build_online_asset(spec)],
        resources={
            "dbt": dbt_cli_resource(),
            "warehouse": Warehouse(path=str(database)),
            "online_store": OnlineStore(url=store_url),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    if not result.success:
        raise RuntimeError("the online store asset failed")


def _training_table(con, spec) -> pa.Table:
    """The feature rows before D with their labels, split by day: the last week test, the week
    before validation (labels as the generator knows them: a benchmark model, not a gated one)."""
    keys = ", ".join(f"f.{k}" for k in spec.keys)
    features = ", ".join(f"f.{c}" for c in spec.features)
    test, validation = D - timedelta(TEST_DAYS), D - timedelta(TEST_DAYS + VALIDATION_DAYS)
    return con.sql(
        f"""
        select {keys}, {features},
            f.transacted_at as _event_time, f.transaction_date as _event_date,
            cast(l.is_fraud as double) as _label,
            case when f.transaction_date >= '{test}' then 'test'
                 when f.transaction_date >= '{validation}' then 'validation'
                 else 'train' end as _split
        from features.transaction_features f join features.fraud_labels l using (transaction_id)
        where f.transaction_date < '{D}'
        order by f.transacted_at, f.transaction_id
        """
    ).to_arrow_table()


def build_world(folder: Path, spec) -> ServeWorld:
    import duckdb

    from data_platform.raw.contract import load_contracts
    from data_platform.raw.ingest import load_landing
    from fraud_demo.generator import GeneratorConfig, generate
    from headwater_core.config import dbt_project_dir

    folder.mkdir(parents=True, exist_ok=True)
    landing, database = folder / "landing", folder / "warehouse.duckdb"
    store_url = str(folder / "online.sqlite")
    config = GeneratorConfig(
        seed=11, start_date=date(2025, 1, 1), days=WORLD_DAYS,
        transactions=WORLD_TRANSACTIONS, fraud_rate=0.03,
    )  # fmt: skip
    generate(config, landing, progress=False)
    contracts = list(load_contracts(dbt_project_dir()).values())
    before = D.isoformat()
    load_landing(database, landing, contracts, partitions=lambda key: key < before)
    _dbt_run(database, folder)
    _write_store(spec, database, store_url)
    load_landing(
        database, landing, contracts, partitions=lambda key: key >= before, snapshots=False
    )
    _dbt_run(database, folder)
    con = duckdb.connect(str(database), read_only=True)
    try:
        source = next(c for c in contracts if c.qualified_name == "raw.transactions")
        names_in = [c.name for c in source.columns]
        columns = ", ".join(names_in)
        requests = con.sql(
            f"select {columns} from raw.transactions where cast(transacted_at as date) = '{D}' "
            "order by transacted_at, transaction_id"
        ).fetchall()
        names = [*spec.keys, *spec.features]
        offline = {
            row[0]: dict(zip(names, row))
            for row in con.sql(
                f"select {', '.join(names)} from features.transaction_features "
                f"where transaction_date = '{D}'"
            ).fetchall()
        }
        training = _training_table(con, spec)
    finally:
        con.close()
    requests = [{c: jsonable(v) for c, v in zip(names_in, row)} for row in requests]
    rows = [{c: jsonable(v) for c, v in offline[r["transaction_id"]].items()} for r in requests]
    return ServeWorld(store_url, requests, rows, training)
