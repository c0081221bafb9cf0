"""The online feature store's pure parts: the plan read from a compiled manifest, the SQL
rewrite, the stores, and a small feature set replayed through each in-process SQL engine (SQLite
and DuckDB, in memory) against the table the same SQL builds offline."""

import json
import sqlite3
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Literal

import duckdb
import pytest

from ml_assets.online.engine import model_views, rewrite
from ml_assets.online.plan import PlanError, Slice, build_plan, plan_from_dict, plan_to_dict
from ml_assets.online.snapshot import slice_sql, write_snapshot
from ml_assets.online.source import OnlineFeatureSource, python_type
from ml_assets.online.store import SQLITE_PAGE_SIZE, MemoryStore, SqliteStore

FCT_SQL = """
select event_id, user_id, amount, kind, happened_at, cast(happened_at as date) as day,
    users.tier
from "w"."raw"."events" events
left join "w"."marts"."dim_users" users using (user_id)
"""
FEATURES_SQL = """
with events as (select * from "w"."marts"."fct_events")
select event_id, user_id, happened_at, day, amount, kind, tier,
    count(*) over before_1d as n_1d,
    coalesce(sum(amount) over before_1d, 0) as amount_1d,
    max(happened_at) over before_all as previous_at
from events
window
    before_1d as (partition by user_id order by happened_at
        range between interval 1 day preceding and interval 1 microsecond preceding),
    before_all as (partition by user_id order by happened_at
        range between unbounded preceding and interval 1 microsecond preceding)
"""
HISTORY = (
    Slice("marts.fct_events", "user_id", "happened_at", 1, keep_last=True),
    Slice("marts.dim_users", "user_id"),
)


def _node(kind, schema, name, deps=(), sql=None, columns=()):
    return {
        "resource_type": kind,
        "schema": schema,
        "name": name,
        "relation_name": f'"w"."{schema}"."{name}"',
        "depends_on": {"nodes": list(deps)},
        "compiled_code": sql,
        "columns": {c: {"data_type": t} for c, t in columns},
    }


def _manifest() -> dict:
    columns = [
        ("event_id", "varchar"),
        ("user_id", "varchar"),
        ("amount", "decimal(12, 2)"),
        ("kind", "varchar"),
        ("happened_at", "timestamp"),
    ]
    return {
        "sources": {"source.p.app.events": _node("source", "raw", "events", columns=columns)},
        "nodes": {
            "model.p.dim_users": _node("model", "marts", "dim_users", sql="select 1"),
            "model.p.fct_events": _node(
                "model",
                "marts",
                "fct_events",
                ["source.p.app.events", "model.p.dim_users"],
                FCT_SQL,
            ),
            "model.p.event_features": _node(
                "model", "features", "event_features", ["model.p.fct_events"], FEATURES_SQL
            ),
            "test.p.accepted_values_kind": {
                "resource_type": "test",
                "column_name": "kind",
                "depends_on": {"nodes": ["source.p.app.events"]},
                "test_metadata": {"name": "accepted_values", "kwargs": {"values": ["a", "b"]}},
            },
        },
    }


def _plan():
    return build_plan(_manifest(), "features.event_features", ["event_id"], "happened_at", HISTORY)


def test_the_plan_runs_the_path_from_the_request_source_to_the_feature_set():
    plan = _plan()
    assert plan.source == "raw.events"
    assert [m.table for m in plan.models] == ["marts.fct_events", "features.event_features"]
    assert plan.state == ("marts.dim_users",)
    assert plan.stored == ("marts.fct_events", "marts.dim_users")
    assert plan.categories == {"kind": ["a", "b"]}
    assert plan_from_dict(plan_to_dict(plan)) == plan


def test_a_plan_needs_one_request_source_and_a_declared_history():
    with pytest.raises(PlanError, match="0 upstream sources"):
        build_plan(_manifest(), "features.event_features", ["nope"], "happened_at", HISTORY)
    with pytest.raises(PlanError, match="no declared online history"):
        build_plan(_manifest(), "features.event_features", ["event_id"], "happened_at")
    with pytest.raises(PlanError, match="not a request column"):
        build_plan(
            _manifest(),
            "features.event_features",
            ["event_id"],
            "happened_at",
            (Slice("marts.dim_users", "tier"),),
        )


def test_relation_names_become_views_and_the_feature_set_reads_history():
    assert (
        rewrite(
            'select * from "w"."a"."bc", "w"."a"."b"',
            {"a.b": '"w"."a"."b"', "a.bc": '"w"."a"."bc"'},
            {"a.b": "v1", "a.bc": "v2"},
        )
        == "select * from v2, v1"
    )
    views = dict(model_views(_plan()))
    assert "hw_source" in views["hw_fresh__marts__fct_events"]
    assert "hw_state__marts__dim_users" in views["hw_fresh__marts__fct_events"]
    assert "hw_all__marts__fct_events" in views["hw_fresh__features__event_features"]
    assert '"w"' not in views["hw_fresh__features__event_features"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_stores_keep_lists_values_and_delete_by_prefix(store, tmp_path):
    s = MemoryStore("p:") if store == "memory" else SqliteStore(tmp_path / "s.sqlite", "p:")
    s.push([("a:1", b"x"), ("a:1", b"y"), ("b:1", b"z")])
    s.set("a:meta", b"m")
    assert s.lists(["a:1", "b:1", "c"]) == [[b"x", b"y"], [b"z"], []]
    assert s.get("a:meta") == b"m" and s.get("missing") is None
    assert s.delete_prefix("a:") == 2
    assert s.lists(["a:1", "b:1"]) == [[], [b"z"]] and s.get("a:meta") is None


def test_a_new_sqlite_store_has_large_pages_and_an_old_one_keeps_its_own(tmp_path):
    new = SqliteStore(tmp_path / "new.sqlite")
    assert new._con().execute("pragma page_size").fetchone() == (SQLITE_PAGE_SIZE,)
    old = sqlite3.connect(tmp_path / "old.sqlite")
    old.execute("create table kv (key text primary key, value blob)")
    old.execute("insert into kv values ('p:a', x'01')")
    old.commit()
    (page_size,) = old.execute("pragma page_size").fetchone()
    old.close()
    assert page_size != SQLITE_PAGE_SIZE
    reopened = SqliteStore(tmp_path / "old.sqlite", "p:")
    assert reopened._con().execute("pragma page_size").fetchone() == (page_size,)
    assert reopened.get("a") == b"\x01"


def test_request_types_follow_the_contract():
    assert python_type("decimal(12, 2)") is float
    assert python_type("TIMESTAMP") is datetime
    assert python_type("bigint") is int
    assert python_type("varchar") is str
    assert python_type("date") is date


def test_a_slice_keeps_the_horizon_and_the_newest_older_row():
    sql = slice_sql(HISTORY[0], date(2025, 3, 1))
    assert """cast("happened_at" as date) >= '2025-03-01'""" in sql and "row_number()" in sql
    assert sql.endswith('order by "user_id", "happened_at"')  # entity by entity
    assert 'where "user_id" is not null' in slice_sql(HISTORY[1], date(2025, 3, 1))


def _warehouse(events: list[tuple]) -> duckdb.DuckDBPyConnection:
    """The offline build: the same SQL over every event, in schemas like the warehouse's."""
    con = duckdb.connect()
    con.execute("attach ':memory:' as w")
    con.execute("use w")
    for schema in ("raw", "marts", "features"):
        con.execute(f"create schema {schema}")
    con.execute(
        "create table raw.events (event_id varchar, user_id varchar, "
        "amount decimal(12, 2), kind varchar, happened_at timestamp, _loaded_at timestamp)"
    )
    con.executemany("insert into raw.events values (?, ?, ?, ?, ?, null)", events)
    con.execute(
        "create table marts.dim_users as select * from (values ('u1', 'gold'), "
        "('u2', 'silver')) t(user_id, tier)"
    )
    con.execute(f"create table marts.fct_events as {FCT_SQL}")
    con.execute(f"create table features.event_features as {FEATURES_SQL}")
    return con


def _events() -> list[tuple]:
    start = datetime(2025, 3, 1, 20)
    rows = []
    for i in range(40):
        at = start + timedelta(hours=3 * i + (i % 3))
        rows.append((f"e{i:02}", "u1" if i % 3 else "u2", Decimal(f"{i}.50"), "ab"[i % 2], at))
    # two at the same instant: neither sees the other
    rows.append(("e98", "u1", Decimal("1.00"), "a", datetime(2025, 3, 5, 12)))
    rows.append(("e99", "u1", Decimal("2.00"), "b", datetime(2025, 3, 5, 12)))
    return rows


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_a_replayed_day_equals_the_offline_table(engine):
    events = _events()
    day = date(2025, 3, 5)
    before = _warehouse([e for e in events if e[4].date() < day])
    store = MemoryStore()
    write_snapshot(before, store, _plan(), ["event_id"], "happened_at")
    spec = SimpleNamespace(
        feature_set="features.event_features",
        keys=["event_id"],
        features=["amount", "tier", "n_1d", "amount_1d"],
    )
    source = OnlineFeatureSource(store, spec, engine)
    assert source.request_fields()["kind"] == Literal["a", "b"]
    assert source.snapshot().engine.name == engine
    after = _warehouse(events)
    expected = after.sql(f"select * from features.event_features where day = '{day}'")
    expected = {r["event_id"]: r for r in expected.to_arrow_table().to_pylist()}
    today = sorted((e for e in events if e[4].date() == day), key=lambda e: (e[4], e[0]))
    assert len(today) >= 8
    for event in today:
        row = dict(zip(["event_id", "user_id", "amount", "kind", "happened_at"], event))
        (served,) = source.features_table([row]).to_pylist()
        assert served == expected[event[0]]
        source.record([row])
    # plain values for the model, by feature name
    (plain,) = source.features(
        [dict(zip(["event_id", "user_id", "amount", "kind", "happened_at"], today[-1]))]
    )
    assert plain == {k: expected[today[-1][0]][k] for k in spec.features} | {
        "amount": float(expected[today[-1][0]]["amount"]),
        "amount_1d": float(expected[today[-1][0]]["amount_1d"]),
    }


def test_a_request_not_after_the_snapshot_is_refused():
    events = _events()
    store = MemoryStore()
    write_snapshot(_warehouse(events[:10]), store, _plan(), ["event_id"], "happened_at")
    spec = SimpleNamespace(feature_set="features.event_features", keys=["event_id"], features=[])
    old = dict(zip(["event_id", "user_id", "amount", "kind", "happened_at"], events[0]))
    with pytest.raises(ValueError, match="not after the online store's last day"):
        OnlineFeatureSource(store, spec).features([old])


def test_a_new_snapshot_keeps_the_served_requests_that_have_not_landed():
    events = _events()
    spec = SimpleNamespace(
        feature_set="features.event_features", keys=["event_id"], features=["n_1d"]
    )
    columns = ["event_id", "user_id", "amount", "kind", "happened_at"]
    store = MemoryStore()
    # the store of day 3, then day 4 served and recorded, then day 4 lands (snapshot of day 4)
    write_snapshot(
        _warehouse([e for e in events if e[4].date() < date(2025, 3, 4)]),
        store,
        _plan(),
        ["event_id"],
        "happened_at",
    )
    source = OnlineFeatureSource(store, spec)
    for event in sorted(e for e in events if e[4].date() == date(2025, 3, 4)):
        source.record([dict(zip(columns, event))])
    # a served request of day 5 before the snapshot of day 4 is written
    early = next(e for e in sorted(events, key=lambda e: e[4]) if e[4].date() == date(2025, 3, 5))
    source.record([dict(zip(columns, early))])
    write_snapshot(
        _warehouse([e for e in events if e[4].date() < date(2025, 3, 5)]),
        store,
        _plan(),
        ["event_id"],
        "happened_at",
    )
    later = [
        e
        for e in events
        if e[4].date() == date(2025, 3, 5) and e[4] > early[4] and e[1] == early[1]
    ]
    expected = (
        _warehouse(events)
        .sql(f"select * from features.event_features where event_id = '{later[0][0]}'")
        .to_arrow_table()
        .to_pylist()
    )
    # the early request is in the later one's window: it was carried into the new snapshot
    assert expected[0]["previous_at"] >= early[4]
    assert source.features_table([dict(zip(columns, later[0]))]).to_pylist() == expected
    # day 4's recorded rows are in the warehouse now: forgotten; day 5's carried over
    assert store.lists(["features.event_features:recorded:marts.fct_events:2025-03-04"]) == [[]]


def test_the_service_sees_each_answered_request_before_its_recording_has_run():
    """The service records after the answer is sent, on the logger's worker; a request that
    comes first must still see every request answered before it (the bench caught counts one
    short on back-to-back payments when it did not)."""
    from headwater.serve.online import OnlineRequestSource

    events = _events()
    day = date(2025, 3, 5)
    store = MemoryStore()
    write_snapshot(
        _warehouse([e for e in events if e[4].date() < day]), store, _plan(), ["event_id"],
        "happened_at",
    )  # fmt: skip
    spec = SimpleNamespace(
        feature_set="features.event_features", keys=["event_id"], features=["n_1d", "amount_1d"]
    )
    service = OnlineRequestSource(OnlineFeatureSource(store, spec))
    expected = _warehouse(events).sql(
        f"select event_id, n_1d, amount_1d from features.event_features where day = '{day}'"
    )
    expected = {r[0]: (r[1], float(r[2])) for r in expected.fetchall()}
    columns = ["event_id", "user_id", "amount", "kind", "happened_at"]
    served = {}
    for event in sorted((e for e in events if e[4].date() == day), key=lambda e: (e[4], e[0])):
        row = dict(zip(columns, event))
        (features,) = service.features([row])
        served[event[0]] = (features["n_1d"], features["amount_1d"])
        service.record([row])  # queued only: the worker's catch_up never runs here
    assert served == expected
    assert any(n for n, _ in served.values())
    # a queued row the store refuses (its day is before the snapshot's) is counted, and the
    # next request is answered all the same
    service.record([dict(zip(columns, events[0]))])
    late = dict(zip(columns, ("e-late", "u1", Decimal("3.00"), "a", datetime(2025, 3, 6, 9))))
    (features,) = service.features([late])
    assert service.record_errors == 1 and features["n_1d"] >= 1
    # and shown where an operator looks: GET /v1/models/{name}
    from headwater.serve.app import describe

    champion = SimpleNamespace(alias="champion", version="3", request_fields={}, info={})
    slot = SimpleNamespace(
        champion=champion, challenger=None, loaded_at=0.0, source=service, spec=spec
    )
    spec.name, spec.registered_model_name = "events", "headwater.events"
    shown = describe(slot)["feature_source"]
    assert shown["record_errors"] == 1
    assert "is not after the online store's last day" in shown["last_record_error"]


def _parsed() -> dict:
    """`_manifest` as `dbt parse` writes it: raw code, parent map and macros."""
    manifest = _manifest()
    for node in [*manifest["nodes"].values(), *manifest["sources"].values()]:
        node["raw_code"] = node.pop("compiled_code", None)
    manifest["parent_map"] = {
        uid: n["depends_on"]["nodes"] for uid, n in manifest["nodes"].items()
    } | {uid: [] for uid in manifest["sources"]}
    manifest["nodes"]["model.p.unrelated"] = _node("model", "marts", "unrelated", sql="select 2")
    manifest["macros"] = {
        "macro.p.window": {"macro_sql": "{% macro window() %}1 day{% endmacro %}"}
    }
    return manifest


def test_the_plan_is_compiled_again_only_when_what_it_is_compiled_from_changes():
    from ml_assets.online.assets import manifest_fingerprint
    from ml_assets.online.snapshot import current_plan

    def fingerprint(manifest, context=("duckdb",)):
        return manifest_fingerprint(manifest, "event_features", list(context))

    first = fingerprint(_parsed())
    assert fingerprint(_parsed()) == first
    outside = _parsed()
    outside["nodes"]["model.p.unrelated"]["raw_code"] = "select 3"
    assert fingerprint(outside) == first
    for change in ("model.p.fct_events", "model.p.dim_users"):  # the path, not only the model
        edited = _parsed()
        edited["nodes"][change]["raw_code"] += " -- edited"
        assert fingerprint(edited) != first, change
    macro = _parsed()
    macro["macros"]["macro.p.window"]["macro_sql"] = "{% macro window() %}2 days{% endmacro %}"
    assert fingerprint(macro) != first
    assert fingerprint(_parsed(), ("spark",)) != first
    # the store keeps the fingerprint its plan was compiled from
    store = MemoryStore()
    write_snapshot(_warehouse(_events()), store, _plan(), ["event_id"], "happened_at", first)
    assert plan_to_dict(current_plan(store, "features.event_features", first)) == plan_to_dict(
        _plan()
    )
    assert current_plan(store, "features.event_features", fingerprint(macro)) is None
    assert current_plan(MemoryStore(), "features.event_features", first) is None


def test_a_new_snapshot_keeps_the_sqlite_views_only_for_the_same_plan_and_column_types(
    monkeypatch,
):
    from ml_assets.online import snapshot, sqlite_engine

    rewrites = []
    rewrite = sqlite_engine.sqlite_views

    def counted(plan, schemas):
        rewrites.append(plan.feature_set)
        return rewrite(plan, schemas)

    def meta(store):
        current = store.get("features.event_features:current").decode()
        return json.loads(store.get(f"features.event_features:{current}:meta"))

    monkeypatch.setattr(sqlite_engine, "sqlite_views", counted)
    store, events = MemoryStore(), _events()
    write_snapshot(_warehouse(events[:20]), store, _plan(), ["event_id"], "happened_at")
    first = meta(store)
    assert len(rewrites) == 1 and first["engine"] == "sqlite" and first["sqlite_views"]
    # the next day: the same plan and column types, so the previous snapshot's views
    write_snapshot(_warehouse(events), store, _plan(), ["event_id"], "happened_at")
    assert len(rewrites) == 1 and meta(store)["sqlite_views"] == first["sqlite_views"]
    # a column's type changed: rewritten
    changed = _warehouse(events)
    changed.execute("alter table features.event_features alter amount_1d type double")
    write_snapshot(changed, store, _plan(), ["event_id"], "happened_at")
    assert len(rewrites) == 2
    # the rewrite's own code changed (another release): rewritten
    monkeypatch.setattr(snapshot, "sqlite_rewriter", lambda: "another release")
    write_snapshot(changed, store, _plan(), ["event_id"], "happened_at")
    assert len(rewrites) == 3 and meta(store)["sqlite_rewriter"] == "another release"


def test_entity_lists_cut_a_table_where_the_key_changes_across_chunks_and_nulls():
    import pyarrow as pa

    from ml_assets.online.snapshot import _entity_lists

    def lists(table, ordered):
        return [(k, p.column("v").to_pylist()) for k, p in _entity_lists(table, "k", ordered)]

    # entity by entity as the slices come (nulls last), in two chunks cut inside "b"
    keys = ["a", "a", "b", "b", "b", "c", None, None]
    table = pa.table({"k": pa.array(keys, pa.string()), "v": range(len(keys))})
    table = pa.concat_tables([table.slice(0, 3), table.slice(3)])
    expected = [("a", [0, 1]), ("b", [2, 3, 4]), ("c", [5]), (None, [6, 7])]
    assert lists(table, ordered=True) == expected
    # unordered: sorted first
    shuffled = table.take([7, 2, 0, 5, 3, 6, 1, 4])
    assert [(k, sorted(v)) for k, v in lists(shuffled, ordered=False)] == expected
    assert lists(table.slice(0, 0), ordered=True) == []
