"""Online features equal offline ones: a day replayed through the online store, on real dbt,
DuckDB, Dagster, SQLite and Redis.

A small generated world is loaded up to the day before D and built by dbt; the `online/
transaction_features` asset writes the store at that point (as it would after the night's run).
Then day D lands, dbt builds the feature table and a booster scores D as the scores asset does
(`scoring.score_window`). Every transaction of D is replayed in time order through
OnlineFeatureSource (features, then record): each served row must equal the feature table's
row, and each served score the batch score. The replay runs on the SQLite engine (the service's
default: the compiled SQL rewritten), on the DuckDB engine (the SQL as compiled), and against a
Redis store.
"""

import uuid
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from data_platform.raw.contract import load_contracts
from data_platform.raw.ingest import load_landing
from fraud_demo.generator import GeneratorConfig, generate
from headwater_core.config import dbt_project_dir
from headwater_core.dbt.resource import dbt_cli_resource
from headwater_core.resources import Warehouse
from ml_assets.models.spec import load_specs
from ml_assets.models.train import predict, to_frame
from ml_assets.online.assets import OnlineStore, build_online_asset
from ml_assets.online.plan import plan_from_dict
from ml_assets.online.snapshot import current_key, meta_key, write_snapshot
from ml_assets.online.source import OnlineFeatureSource
from ml_assets.online.store import RedisStore
from ml_assets.scores import scoring
from tests.fraud_world import dbt

# 70 days: the matured merchant fraud rate (days D-120 .. D-61) has data on the last day.
WORLD = GeneratorConfig(
    seed=11, start_date=date(2025, 1, 1), days=70, transactions=4_000, fraud_rate=0.03
)
D = WORLD.start_date + timedelta(days=WORLD.days - 1)
REDIS_URL = "redis://127.0.0.1:6379/0"


def _spec():
    return next(s for s in load_specs() if s.name == "fraud_classifier")


def _load_raw(landing: Path, database: Path, days) -> None:
    """The snapshots and the days before D (`days="before"`), or day D and later (`"D"`)."""
    load_landing(
        database,
        landing,
        load_contracts(dbt_project_dir()).values(),
        partitions=lambda key: (key < D.isoformat()) == (days == "before"),
        snapshots=days == "before",
    )


def _dbt_run(database: Path, tmp: Path) -> None:
    dbt(database, tmp, ["run", "--select", "+transaction_features +fraud_labels"])


def _train(con, spec):
    """A small booster on the matured rows: the champion that scores D."""
    import lightgbm as lgb

    table = con.sql(
        "select f.*, cast(l.is_fraud as double) as label from features.transaction_features f "
        f"join features.fraud_labels l using (transaction_id) where f.transaction_date < '{D}'"
    ).to_arrow_table()
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 1, "num_threads": 1}
    data = lgb.Dataset(to_frame(table, spec), table.column("label").to_numpy())
    return lgb.train(params, data, num_boost_round=40)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("online")
    database = tmp / "warehouse.duckdb"
    spec = _spec()
    generate(WORLD, tmp / "landing", progress=False)
    _load_raw(tmp / "landing", database, "before")
    _dbt_run(database, tmp)
    # the store as the asset leaves it at the end of D-1
    store = OnlineStore(url=str(tmp / "online.sqlite"))
    compiled = []
    # twice: the second snapshot reuses the first's compiled SQL (the project did not change),
    # and it is the one the replays below are served from
    for _ in range(2):
        result = dg.materialize(
            [build_online_asset(spec)],
            resources={
                "dbt": dbt_cli_resource(),
                "warehouse": Warehouse(path=str(database)),
                "online_store": store,
            },
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
        (materialization,) = result.get_asset_materialization_events()
        metadata = materialization.step_materialization_data.materialization.metadata
        compiled.append(metadata["plan_compiled"].value)
        # the feature SQL is rewritten for the service's SQLite engine, not left to DuckDB
        assert metadata["serving_engine"].value == "sqlite"
    assert compiled == [True, False]
    # the same snapshot in Redis, from the plan the asset stored (no second compile)
    sqlite = store.open()
    meta = sqlite.get(
        meta_key(spec.feature_set, sqlite.get(current_key(spec.feature_set)).decode())
    )
    redis_store = RedisStore(REDIS_URL, prefix=f"hw-test-online-{uuid.uuid4().hex}:")
    try:
        import json

        plan = plan_from_dict(json.loads(meta)["plan"])
        con = duckdb.connect(str(database), read_only=True)
        write_snapshot(con, redis_store, plan, list(spec.keys), spec.event_time)
        con.close()
        # day D lands and is built and scored
        _load_raw(tmp / "landing", database, "D")
        _dbt_run(database, tmp)
        con = duckdb.connect(str(database))
        booster = _train(con, spec)
        scoring.score_window(
            con, spec, booster, "1", (D.isoformat(), (D + timedelta(1)).isoformat())
        )
        requests = (
            con.sql(
                f"select {', '.join(plan.source_columns)} from raw.transactions "
                f"where cast(transacted_at as date) = '{D}' order by transacted_at, transaction_id"
            )
            .to_arrow_table()
            .to_pylist()
        )
        expected = con.sql(
            f"select * from features.transaction_features where transaction_date = '{D}'"
        ).to_arrow_table()
        scores = dict(
            con.sql("select transaction_id, score from scores.fraud_classifier").fetchall()
        )
        con.close()
        yield {
            "spec": spec,
            "store": sqlite,
            "redis": redis_store,
            "requests": requests,
            "expected": expected,
            "scores": scores,
            "booster": booster,
        }
    finally:
        redis_store.delete_prefix("")
        assert redis_store.client.keys(redis_store.prefix + "*") == []


def _replay(source: OnlineFeatureSource, requests: list[dict]) -> pa.Table:
    served = []
    for row in requests:
        served.append(source.features_table([row]))
        source.record([row])
    return pa.concat_tables(served)


def _by_key(table: pa.Table) -> dict:
    return {r["transaction_id"]: r for r in table.to_pylist()}


def test_served_features_equal_the_feature_table(world):
    assert len(world["requests"]) > 20
    source = OnlineFeatureSource(world["store"], world["spec"])
    assert source.snapshot().engine.name == "sqlite"  # the default engine, when it can
    served = _replay(source, world["requests"])
    world["served"] = served
    assert served.schema == world["expected"].schema
    assert _by_key(served) == _by_key(world["expected"])
    # the day's rows exercise the history: windows, matured rates, a previous transaction
    rows = served.to_pylist()
    assert any(r["customer_txn_count_7d"] for r in rows)
    assert any(r["merchant_fraud_rate_matured"] for r in rows)


def test_served_scores_equal_the_batch_scores(world):
    spec = world["spec"]
    served = world.get("served") or _replay(
        OnlineFeatureSource(world["store"], spec), world["requests"]
    )
    score = predict(world["booster"], to_frame(served, spec))
    ids = served.column("transaction_id").to_pylist()
    assert dict(zip(ids, score.tolist())) == {i: world["scores"][i] for i in ids}


def test_the_duckdb_engine_serves_the_same_features(world):
    """The fallback for SQL the SQLite rewrite does not cover: the compiled SQL as it is."""
    source = OnlineFeatureSource(world["store"], world["spec"], engine="duckdb")
    assert source.snapshot().engine.name == "duckdb"
    served = _replay(source, world["requests"])
    assert served.schema == world["expected"].schema
    assert _by_key(served) == _by_key(world["expected"])


def test_a_redis_store_serves_the_same_features(world):
    source = OnlineFeatureSource(world["redis"], world["spec"])
    served = _replay(source, world["requests"])
    assert _by_key(served) == _by_key(world["expected"])
    # what the service calls: plain values by feature name, and the fields a request carries
    (first,) = source.features([world["requests"][0]])
    assert list(first) == list(world["spec"].features)
    fields = source.request_fields()
    assert fields["amount"] is float and "transacted_at" in fields
    assert "online" in fields["channel"].__args__
