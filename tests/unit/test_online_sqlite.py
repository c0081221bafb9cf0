"""The SQLite rewrite of DuckDB's compiled SQL (ml_assets/online/sqlite_sql.py): each construct
the feature SQL uses gives the same values in SQLite, over integer dates and timestamps, as in
DuckDB over the same rows; what the rewrite does not cover is refused by name, and the service
then keeps DuckDB."""

import random
import sqlite3
from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from ml_assets.online.plan import plan_from_dict
from ml_assets.online.source import make_engine
from ml_assets.online.sqlite_engine import SqliteEngine, inline_plain_ctes, sqlite_views
from ml_assets.online.sqlite_sql import (
    DECIMAL_AVG,
    Untranslatable,
    column_kinds,
    decimal_average,
    decimal_scales,
    to_sqlite,
)
from ml_assets.online.sqlite_values import arrow_rows, from_sqlite_column
from ml_assets.online.sqlite_windows import windows_as_subqueries

SCHEMAS = {
    "t": [
        ["id", "VARCHAR"],
        ["who", "VARCHAR"],
        ["ts", "TIMESTAMP"],
        ["d", "DATE"],
        ["amount", "DECIMAL(12,2)"],
        ["n", "BIGINT"],
    ]
}


def _rows() -> list[tuple]:
    rng = random.Random(7)
    start = datetime(2025, 1, 30, 22, 59, 59, 999_999)
    rows = []
    for i in range(60):
        at = start + timedelta(seconds=rng.randrange(0, 40 * 86_400), microseconds=rng.randrange(9))
        amount = Decimal(rng.randrange(1, 100_000)) / 100
        rows.append((f"r{i}", "ab"[i % 2], at, at.date(), amount, rng.randrange(0, 9)))
    rows.append(("same-1", "a", datetime(2025, 2, 3, 12), date(2025, 2, 3), Decimal("1.10"), 2))
    rows.append(("same-2", "a", datetime(2025, 2, 3, 12), date(2025, 2, 3), Decimal("2.20"), 3))
    return rows


@pytest.fixture(scope="module")
def engines():
    """The same rows in DuckDB (typed) and in SQLite (as the engine stores them)."""
    con = duckdb.connect()
    columns = ", ".join(f"{n} {t}" for n, t in SCHEMAS["t"])
    con.execute(f"create table t ({columns})")
    con.executemany("insert into t values (?, ?, ?, ?, ?, ?)", _rows())
    table = con.sql("select * from t").to_arrow_table()
    lite = sqlite3.connect(":memory:")
    lite.create_function(DECIMAL_AVG, 4, decimal_average, deterministic=True)
    lite.execute(f"create table t ({', '.join(n for n, _ in SCHEMAS['t'])})")
    values = arrow_rows(table)
    lite.executemany("insert into t values (?, ?, ?, ?, ?, ?)", values)
    yield con, lite
    con.close()
    lite.close()


def test_arrow_casts_and_value_by_value_give_the_same_sqlite_values(monkeypatch):
    """Store entries decode by Arrow casts from `CAST_ROWS` rows on, value by value below:
    the same integers for dates and timestamps (zoned ones as UTC), nulls kept."""
    import ml_assets.online.sqlite_values as sqlite_values

    table = pa.table(
        {
            "at": pa.array([datetime(2025, 3, 1, 23, 59, 59, 999_999), None], pa.timestamp("us")),
            "utc": pa.array([datetime(1969, 12, 31, 23), None], pa.timestamp("us", tz="UTC")),
            "ms": pa.array([datetime(2025, 1, 1, 0, 0, 1), None], pa.timestamp("ms")),
            "day": pa.array([date(1969, 12, 30), None], pa.date32()),
            "amount": pa.array([Decimal("293.36"), None], pa.decimal128(12, 2)),
        }
    )
    monkeypatch.setattr(sqlite_values, "CAST_ROWS", 1)
    cast = arrow_rows(table)
    monkeypatch.setattr(sqlite_values, "CAST_ROWS", 10**9)
    assert arrow_rows(table) == cast
    assert cast == [
        (1_740_873_599_999_999, -3_600_000_000, 1_735_689_601_000_000, -2, 293.36),
        (None, None, None, None, None),
    ]


def _both(engines, sql: str, windows: bool = False) -> tuple[list, list]:
    """`sql`'s rows from DuckDB, and from SQLite after the rewrite (and, with `windows`, its
    window aggregates as subqueries), typed as DuckDB's."""
    con, lite = engines
    expected = con.sql(sql).to_arrow_table()
    rewritten = to_sqlite(sql, column_kinds(SCHEMAS), decimal_scales(SCHEMAS))
    if windows:
        rewritten = windows_as_subqueries(rewritten)
        assert " OVER " not in rewritten.upper(), rewritten
    rows = lite.execute(rewritten).fetchall()
    columns = list(zip(*rows)) if rows else [()] * expected.num_columns
    got = [
        from_sqlite_column(list(values), field.type).to_pylist()
        for values, field in zip(columns, expected.schema)
    ]
    return [list(r.values()) for r in expected.to_pylist()], [list(r) for r in zip(*got)]


def _windows(col: str, **frames: str) -> str:
    """A WINDOW clause: one named range frame per keyword, `start..end` preceding."""
    parts = []
    for name, frame in frames.items():
        first, last = frame.split("..")
        parts.append(
            f"{name} as (partition by who order by {col} "
            f"range between {first} preceding and {last} preceding)"
        )
    return "window " + ", ".join(parts)


QUERIES = {
    "a timestamp's day and hour": (
        "select id, cast(ts as date) as day, cast(extract(hour from ts) as integer) as h, "
        "extract(hour from ts) < 6 as night from t order by id"
    ),
    "dates and timestamps plus an interval": (
        "select id, d + interval 60 days as later, ts - interval 90 minutes as earlier, "
        "d + interval 3 hours as three, d - date '2025-01-01' as days from t order by id"
    ),
    "a date against a timestamp": (
        "select a.id as a_id, b.id as b_id from t a join t b on a.n = b.n "
        "where a.d <= b.ts - interval 2 days and b.d > a.ts order by a.id, b.id"
    ),
    "date_diff in days and in seconds": (
        "select a.id as a_id, b.id as b_id, date_diff('day', a.d, b.d) as days, "
        "date_diff('second', a.ts, b.ts) as seconds from t a join t b on a.n = b.n "
        "order by a.id, b.id"
    ),
    "range frames over a timestamp": (
        "select id, count(*) over w1 as c1, coalesce(sum(amount) over w24, 0) as s24, "
        "avg(amount) over w30 as a30, max(ts) over w_all as previous, "
        "amount / nullif(avg(amount) over w30, 0) as ratio from t "
        + _windows(
            "ts",
            w1="interval 1 hour..interval 1 microsecond",
            w24="interval 24 hours..interval 1 microsecond",
            w30="interval 30 days..interval 1 microsecond",
            w_all="unbounded..interval 1 microsecond",
        )
        + " order by id"
    ),
    "range frames over a date": (
        "with days as (select who, d, count(*) as n from t group by 1, 2) "
        "select who, d, cast(coalesce(sum(n) over w, 0) as bigint) as matured from days "
        + _windows("d", w="interval 20 days..interval 5 days")
        + " order by who, d"
    ),
    "dates and timestamps against literals": (
        "select id from t where d >= '2025-02-10' and ts < '2025-03-01 06:00:00' order by id"
    ),
    "a plain average of a decimal, and division": (
        "select who, avg(amount) as a, cast(sum(n) as double) / count(*) as m, n / 2 as half "
        "from t group by who, n order by who, n"
    ),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_sqlite_gives_duckdbs_values(engines, name):
    expected, got = _both(engines, QUERIES[name])
    assert len(expected) > 1
    assert got == expected


@pytest.mark.parametrize("name", [n for n in QUERIES if "range frames" in n])
def test_window_aggregates_as_subqueries_give_duckdbs_values(engines, name):
    expected, got = _both(engines, QUERIES[name], windows=True)
    assert len(expected) > 1
    assert got == expected


def test_window_subqueries_keep_the_frames_of_null_keys():
    """Null partition keys are one partition; a null order key's frame is its null peers (the
    whole partition from UNBOUNDED PRECEDING), as in DuckDB."""
    rows = [("a", 1, 10.0), ("a", 2, 20.0), ("a", 2, 8.0), ("a", None, 5.0), ("a", None, 7.0)]
    rows += [("a", 3, 1.0), (None, 1, 2.0), (None, 2, 3.0), (None, None, 4.0), ("b", 5, 1.5)]
    frames = {
        "w1": "1 preceding and 1 preceding",
        "w2": "unbounded preceding and 1 preceding",
        "w3": "2 preceding and current row",
        "w4": "unbounded preceding and current row",
    }
    windows = ", ".join(
        f"{n} as (partition by p order by o nulls last range between {f})"
        for n, f in frames.items()
    )
    sql = (
        "select p, o, v, count(*) over w1 as c1, sum(v) over w1 as s1, count(v) over w2 as c2, "
        "max(o) over w3 as m3, min(v) over w4 as m4, count(*) over w4 as c4 from t "
        f"window {windows} order by p nulls last, o nulls last, v"
    )
    duck = duckdb.connect()
    duck.execute("create table t (p varchar, o integer, v double)")
    duck.executemany("insert into t values (?, ?, ?)", rows)
    lite = sqlite3.connect(":memory:")
    lite.execute("create table t (p, o, v)")
    lite.executemany("insert into t values (?, ?, ?)", rows)
    rewritten = windows_as_subqueries(sql)
    assert " OVER " not in rewritten.upper()
    assert lite.execute(rewritten).fetchall() == duck.execute(sql).fetchall()


@pytest.mark.parametrize(
    "sql",
    [
        "select row_number() over (partition by who order by ts nulls last) from t",
        "select count(*) over (partition by who order by ts desc nulls last "
        "range between 1 preceding and current row) from t",
        "select count(*) over (partition by who order by ts nulls last "
        "rows between 1 preceding and current row) from t",
        "select count(*) over (partition by who order by ts nulls last "
        "range between 1 preceding and 1 following) from t",
        "select count(distinct n) over (partition by who order by ts nulls last "
        "range between 1 preceding and current row) from t",
        "select count(*) over (partition by who order by ts nulls last "
        "range between 1 preceding and current row) from t where n > 2",
        "select count(*) over (partition by a.who order by a.ts nulls last "
        "range between 1 preceding and current row) from t a join t b on a.id = b.id",
        "select count(*) over w2 from t window w1 as (partition by who), "
        "w2 as (w1 order by ts nulls last range between 1 preceding and current row)",
        "select count(*) over (w1 order by ts nulls last range between 1 preceding and "
        "current row) from t window w1 as (partition by who)",
    ],
)
def test_windows_the_subquery_equality_does_not_cover_stay_windows(sql):
    assert " OVER " in windows_as_subqueries(sql).upper()


@pytest.mark.parametrize(
    "sql",
    [
        "select date_trunc('month', ts) from t",
        "select now() from t",
        "select extract(dow from ts) from t",
        "select cast(d as varchar) from t",
        "select ts + interval (n) day from t",
        "select ts + interval 1 month from t",
        "select ts - ts from t",
        "select cast(amount * 1.5 as decimal(12, 2)) from t",
    ],
)
def test_what_the_rewrite_does_not_cover_is_refused(sql):
    with pytest.raises(Untranslatable):
        to_sqlite(sql, column_kinds(SCHEMAS), decimal_scales(SCHEMAS))


def test_sql_sqlite_cannot_run_is_refused_when_the_snapshot_is_written():
    """A function sqlglot knows but SQLite does not have is caught by preparing the views."""
    plan = _plan('select id, md5(id) as h from "w"."raw"."e"')
    with pytest.raises(Untranslatable, match="no such function"):
        sqlite_views(plan, {"raw.e": [["id", "VARCHAR"]], "features.f": [["id", "VARCHAR"]]})
    plan = _plan('select id from "w"."raw"."e"')
    ((name, sql),) = sqlite_views(plan, {"raw.e": [["id", "VARCHAR"]], "features.f": []})
    assert name == "hw_fresh__features__f" and sql.startswith("SELECT id FROM hw_source")


def test_a_column_name_must_keep_its_temporal_type_across_tables():
    with pytest.raises(Untranslatable, match="both a date and a timestamp"):
        column_kinds({"a": [["at", "DATE"]], "b": [["at", "TIMESTAMP"]]})
    with pytest.raises(Untranslatable, match="time zone"):
        column_kinds({"a": [["at", "TIMESTAMP WITH TIME ZONE"]]})


def test_the_decimal_average_is_duckdbs_to_the_last_bit():
    """A float average of decimals differs from DuckDB's in the last bit on some of these sets
    (that is why the rewrite calls `hw_decimal_avg`), grouped or over a window; the exact one
    never does."""
    rng = random.Random(3)
    con = duckdb.connect()
    plain_differs = 0
    for _ in range(300):
        values = [Decimal(rng.randrange(1, 10**7)) / 100 for _ in range(rng.randrange(1, 40))]
        (expected,) = con.execute(
            "select avg(v) from (select unnest(?::decimal(12,2)[]) as v)", [values]
        ).fetchone()
        (over_window,) = con.execute(
            "select last(a order by i) from (select i, avg(v) over (order by i rows between "
            "unbounded preceding and current row) as a from (select unnest(?::decimal(12,2)[]) "
            "as v, unnest(range(?)) as i))",
            [values, len(values)],
        ).fetchone()
        total = sum(int(v * 100) for v in values)
        assert decimal_average(total, len(values), 2, False) == expected
        assert decimal_average(total, len(values), 2, True) == over_window
        plain = sum(float(v) for v in values) / len(values)
        plain_differs += plain != expected or plain != over_window
    assert plain_differs > 0


def _plan(sql: str):
    """A one-model plan: `features.f` is `sql` over the request source `raw.e`."""
    return plan_from_dict(
        {
            "feature_set": "features.f",
            "source": "raw.e",
            "source_columns": {"id": "varchar"},
            "models": [["features.f", sql, ["raw.e"]]],
            "state": [],
            "relation_names": {"raw.e": '"w"."raw"."e"', "features.f": '"w"."features"."f"'},
            "history": [],
            "categories": {},
        }
    )


def test_a_snapshot_without_sqlite_views_is_served_by_duckdb():
    plan = _plan('select * from "w"."raw"."e"')
    schemas = {"raw.e": [["id", "VARCHAR"]], "features.f": [["id", "VARCHAR"]]}
    meta = {"schemas": schemas, "keys": ["id"], "engine": "duckdb (reason)"}
    assert make_engine("auto", plan, meta).name == "duckdb"
    with pytest.raises(LookupError, match="no SQLite views: duckdb"):
        make_engine("sqlite", plan, meta)
    with pytest.raises(ValueError, match="one of auto, sqlite, duckdb"):
        make_engine("fast", plan, meta)


def test_import_ctes_are_read_in_place_and_computed_ones_materialised():
    sql = inline_plain_ctes(
        "with a as (select * from t where true), b as (select who, count(*) as n from a "
        "group by who), c as (select distinct * from t) select * from a join b using (who), c"
    )
    assert "a AS NOT MATERIALIZED (SELECT * FROM t WHERE TRUE)" in sql
    assert "b AS (SELECT" in sql and "c AS (SELECT DISTINCT" in sql


def _who_plan(models: list, state: list[str]):
    """A plan whose requests are rows of `raw.e` (id, who, ts), with `models` on its path and
    each `who`'s last day of `staging.s` as history."""
    return plan_from_dict(
        {
            "feature_set": "features.f",
            "source": "raw.e",
            "source_columns": {"id": "varchar", "who": "varchar", "ts": "timestamp"},
            "models": models,
            "state": state,
            "relation_names": {
                "raw.e": '"w"."raw"."e"',
                "staging.s": '"w"."staging"."s"',
                "features.f": '"w"."features"."f"',
            },
            "history": [["staging.s", "who", "ts", 1, False]],
            "categories": {},
        }
    )


def test_the_answer_reads_the_history_through_indexes():
    """The request's row is found by its key and its window computed from a range of the
    (entity, time) index: SQLite's own window, or a join scanned per row, would read every
    history row (or every pair of them) on each request."""
    plan = _who_plan(
        [
            ["staging.s", 'select * from "w"."raw"."e"', ["raw.e"]],
            [
                "features.f",
                'with t as (select * from "w"."staging"."s" where true), h as (select id, '
                "count(*) over (partition by who order by ts range between interval 1 day "
                "preceding and interval 1 microsecond preceding) as n from t) "
                "select t.id, t.who, h.n from t join h on t.id = h.id",
                ["staging.s"],
            ],
        ],
        state=[],
    )
    columns = [["id", "VARCHAR"], ["who", "VARCHAR"], ["ts", "TIMESTAMP"]]
    schemas = {"raw.e": columns, "staging.s": columns, "features.f": columns[:2]}
    engine = SqliteEngine(plan, schemas, ["id"])
    indexes = {
        sql for (sql,) in engine.con.execute("select sql from sqlite_master where type = 'index'")
    }
    assert {i.split(" on ")[1] for i in indexes} == {
        'hw_source ("id")',
        'hw_state__staging__s ("id")',
        'hw_state__staging__s ("who", "ts")',
    }
    steps = [row[3] for row in engine.con.execute("explain query plan " + engine.answer_sql)]
    # the request's row found by its key, its window a range of the (entity, time) index
    assert any("INDEX hw_state__staging__s__id (id=?)" in step for step in steps), steps
    assert any("INDEX hw_state__staging__s__who__ts (who=?" in step for step in steps), steps
    assert not any(step.startswith("SCAN hw_state") for step in steps), steps
    stored = {"staging.s": [(b"x's entry", [("a", "x", 1_000_000), ("b", "x", 2_000_000)])]}
    answer, _ = engine.run(
        [{"id": "c", "who": "x", "ts": "1970-01-01T00:00:03"}], stored, (), "rows"
    )
    assert answer == [{"id": "c", "who": "x", "n": 2}]


def test_a_recorded_entry_is_kept_as_decoding_it_would_give():
    """`record` hands the engine the rows it has just encoded: kept as they are, they equal
    what the next request would decode from the store."""
    from ml_assets.online.snapshot import from_ipc, to_ipc

    plan = _plan('select * from "w"."raw"."e"')
    columns = [
        ["id", "VARCHAR"],
        ["at", "TIMESTAMP"],
        ["day", "DATE"],
        ["amount", "DECIMAL(12,2)"],
        ["night", "BOOLEAN"],
    ]
    engine = SqliteEngine(
        plan, {"raw.e": columns, "state.s": columns, "features.f": columns}, ["id"]
    )
    rows = [
        {"id": "a", "at": datetime(2025, 3, 1, 23, 59, 59, 999_999), "day": date(2025, 3, 1),
         "amount": Decimal("293.36"), "night": True},
        {"id": "b", "at": None, "day": None, "amount": None, "night": False},
    ]  # fmt: skip
    blob = to_ipc(pa.Table.from_pylist(rows, engine.arrow["state.s"]))
    engine.remember("state.s", blob, rows)
    # kept: the next request does not decode it
    assert engine.stored_rows("state.s", [blob]) == [(blob, None)]
    ids = engine.cached[("state.s", blob)]
    kept = engine.con.execute(
        f"select * from hw_cache__state__s where rowid in ({', '.join(map(str, ids))})"
    ).fetchall()
    assert kept == engine._arrow_rows("state.s", from_ipc(blob))
    assert kept[0][1] == 1_740_873_599_999_999 and kept[0][3] == 293.36


def test_store_entries_are_cached_once_and_read_as_given(monkeypatch):
    """A request's stored rows come from the cache tables: a row two entries share (the
    customer's and the merchant's) is one row there and in the request's table; the entries
    answer the same after the cache starts again empty past its bound."""
    import ml_assets.online.sqlite_engine as sqlite_engine

    plan = _who_plan(
        [
            [
                "features.f",
                'select e.id, count(*) as n, count(distinct s.id) as ids from "w"."raw"."e" e '
                'join "w"."staging"."s" s on s.who = e.who group by e.id',
                ["raw.e", "staging.s"],
            ]
        ],
        state=["staging.s"],
    )
    columns = [["id", "VARCHAR"], ["who", "VARCHAR"], ["ts", "TIMESTAMP"]]
    schemas = {
        "raw.e": columns,
        "staging.s": columns,
        "features.f": [["id", "VARCHAR"], ["n", "BIGINT"], ["ids", "BIGINT"]],
    }
    engine = SqliteEngine(plan, schemas, ["id"])
    shared, own = ("a", "x", 1), ("b", "x", 2)
    stored = {"staging.s": [(b"customer", [shared, own]), (b"merchant", [shared])]}
    request = [{"id": "c", "who": "x", "ts": "1970-01-01T00:00:03"}]
    answer, _ = engine.run(request, stored, (), "rows")
    assert answer == [{"id": "c", "n": 2, "ids": 2}]
    assert engine.cached_rows == 2
    cached = engine.cached
    assert cached[("staging.s", b"merchant")] == cached[("staging.s", b"customer")][:1]
    # cached entries need no rows, and the request's table is empty again after the run
    answer, _ = engine.run(request, {"staging.s": [(b"customer", None)]}, (), "rows")
    assert answer == [{"id": "c", "n": 2, "ids": 2}]
    assert engine.con.execute("select count(*) from hw_state__staging__s").fetchone() == (0,)
    monkeypatch.setattr(sqlite_engine, "CACHED_ROWS", 1)
    answer, _ = engine.run(request, stored, (), "rows")
    assert answer == [{"id": "c", "n": 2, "ids": 2}]
    assert engine.cached_rows == 2
    assert engine.con.execute("select count(*) from hw_cache__staging__s").fetchone() == (2,)
