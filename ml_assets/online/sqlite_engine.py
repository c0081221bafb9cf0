"""The online plan run in an in-process SQLite: the same views as the DuckDB engine
(ml_assets/online/engine.py), over the same compiled dbt SQL rewritten for SQLite
(ml_assets/online/sqlite_sql.py).

Why a second engine: DuckDB binds and optimises the feature SQL again on every query (about
20 ms for transaction_features, prepared or not) and starts each window operator for a few rows,
while SQLite prepares a statement once and, with the windows rewritten for the request's row
(ml_assets/online/sqlite_windows.py), runs it over a request's 100-170 history rows in 0.2 ms.
Each table is a real SQLite table, emptied and filled per request, so the statements stay
prepared (Python's sqlite3 caches them by their text). A store entry's rows are inserted once
into a cache table beside it; a request copies its entries' rows from there by rowid, inside
SQLite (three times faster than binding them from Python again). Dates and timestamps are
integers here (days and microseconds since 1970); values are converted on the way in from Arrow
and the request, and on the way out to the tables' own Arrow types, so the answer has the feature
table's schema. The parity test runs every request of a day through both engines.
"""

from __future__ import annotations

import json
import sqlite3
import threading

from ml_assets.online.engine import model_views, view
from ml_assets.online.plan import Plan
from ml_assets.online.snapshot import from_ipc
from ml_assets.online.sqlite_sql import (
    DECIMAL_AVG,
    Untranslatable,
    column_kinds,
    decimal_average,
    decimal_scales,
    to_sqlite,
)
from ml_assets.online.sqlite_values import (
    FreshRows,
    arrow_rows,
    arrow_schemas,
    from_sqlite_column,
    plain_converter,
    request_value,
    to_sqlite_value,
)
from ml_assets.online.sqlite_windows import inline_plain_ctes, windows_as_subqueries

# rows of decoded store entries kept in the cache tables (an entry is one entity's slice, or a
# recorded request): a request's history is read from the store every time, but decoded from
# Arrow and inserted only once. Past this many rows the cache starts again empty.
CACHED_ROWS = 500_000


def sqlite_views(plan: Plan, schemas: dict[str, list[list[str]]]) -> list[tuple[str, str]]:
    """(view name, SQLite SQL) of every view of the plan, in creation order: the DuckDB
    engine's views (`engine.model_views`), each path model's compiled SQL rewritten for SQLite.
    Raises `Untranslatable` when the SQL uses what the rewrite does not cover."""
    kinds, scales = column_kinds(schemas), decimal_scales(schemas)
    out = []
    for name, sql in model_views(plan):
        if name.startswith("hw_all__"):
            # the stored rows and the fresh ones, without duplicates (DuckDB's `distinct *`):
            # `run` adds the fresh rows to the state table (a union view would be computed
            # again by every reader)
            table = next(t for t in schemas if view("all", t) == name)
            sql = f"select * from {view('state', table)}"
        else:
            sql = inline_plain_ctes(windows_as_subqueries(to_sqlite(sql, kinds, scales)))
        out.append((name, sql))
    _check_views(plan, schemas, out)
    return out


def _check_views(plan: Plan, schemas: dict, views: list[tuple[str, str]]) -> None:
    """Prepare every view's query in a scratch SQLite: a function SQLite lacks, or SQL it does
    not parse, is refused here, when the snapshot is written, not on a request."""
    con = sqlite3.connect(":memory:")
    try:
        con.create_function(DECIMAL_AVG, 4, decimal_average, deterministic=True)
        _create_tables(con, plan, schemas)
        for name, sql in views:
            con.execute(f"create view {name} as {sql}")
            con.execute(f"select * from {name} limit 0").fetchall()
    except sqlite3.Error as error:
        raise Untranslatable(f"SQLite refuses the rewritten SQL: {error}") from error
    finally:
        con.close()


def _table_name(plan: Plan, table: str) -> str:
    return "hw_source" if table == plan.source else view("state", table)


def _create_tables(con, plan: Plan, schemas: dict, keys=()) -> list[str]:
    """One SQLite table per relation a request fills (the source's rows, the stored rows of
    every other table but the feature set); returns those relations. Each table is indexed on
    the model's keys (the feature SQL joins its rows back on them) and on each history slice's
    entity and time (a window's frame, as `sqlite_windows` rewrites it, is a range of it)."""
    tables = [t for t in schemas if t != plan.feature_set]
    for table in tables:
        name, columns = _table_name(plan, table), [n for n, _ in schemas[table]]
        cols = ", ".join(f'"{n}"' for n in columns)
        con.execute(f"create table {name} ({cols})")
        slices = [(s.key, s.time_column) for s in plan.history if s.relation == table]
        indexes = [(k,) for k in keys] + [tuple(c for c in s if c) for s in slices]
        for index in dict.fromkeys(i for i in indexes if set(i) <= set(columns)):
            on = ", ".join(f'"{c}"' for c in index)
            con.execute(f"create index {name}__{'__'.join(index)} on {name} ({on})")
    return tables


def _merge(table: str, columns: list[str]) -> str:
    """Add a stored path table's fresh rows to its stored ones, without duplicates: `except`,
    written so that each fresh row is looked up through the table's indexes, not by a scan."""
    state, cols = view("state", table), ", ".join(f'"{c}"' for c in columns)
    same = " and ".join(f's."{c}" is f."{c}"' for c in columns)
    return (
        f"insert into {state} ({cols}) select distinct {cols} from {view('fresh', table)} f "
        f"where not exists (select 1 from {state} s where {same})"
    )


class SqliteEngine:
    """One SQLite connection with a plan's tables and views; `run` is `Engine.run`'s twin."""

    name = "sqlite"

    def __init__(
        self,
        plan: Plan,
        schemas: dict[str, list[list[str]]],
        keys: list[str],
        views: list[tuple[str, str]] | None = None,
    ) -> None:
        """`views`: `sqlite_views(plan, schemas)`, as the snapshot stored them (computed here
        when not given)."""
        if plan.feature_set not in schemas:
            raise LookupError(f"the snapshot has no column types of {plan.feature_set}")
        self.plan = plan
        self.keys = keys
        self.lock = threading.Lock()
        self.arrow = arrow_schemas(schemas)
        self.empty = {t: schema.empty_table() for t, schema in self.arrow.items()}
        self.con = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.con.create_function(DECIMAL_AVG, 4, decimal_average, deterministic=True)
        tables = _create_tables(self.con, plan, schemas, keys)
        self.source = [(n, kind) for n, kind in schemas[plan.source]]
        self.source_insert = f"insert into hw_source values ({', '.join('?' * len(self.source))})"
        for name, sql in views if views is not None else sqlite_views(plan, schemas):
            self.con.execute(f"create view {name} as {sql}")
        final = view("fresh", plan.models[-1].table)
        match = " and ".join(f'r."{k}" = f."{k}"' for k in keys)
        distinct = ", ".join(f'"{k}"' for k in keys)
        # a join from the request's keys, not `where exists`: SQLite then drives the feature
        # SQL's final join from the request rows through the indexes
        self.answer_sql = (
            f"select f.* from (select distinct {distinct} from hw_source) r "
            f"join {final} f on {match}"
        )
        path = {m.table for m in plan.models}
        self.merges = [_merge(t, [n for n, _ in schemas[t]]) for t in plan.stored if t in path]
        self.plain = {f.name: plain_converter(f.type) for f in self.arrow[plan.feature_set]}
        # each stored table is filled per request from its cache table
        stored = [t for t in tables if t != plan.source]
        self.copies, self.cache_inserts = {}, {}
        for table in stored:
            cache, cols = view("cache", table), ", ".join(f'"{n}"' for n, _ in schemas[table])
            self.con.execute(f"create table {cache} ({cols})")
            self.cache_inserts[table] = (
                f"insert into {cache} (rowid, {cols}) values (?{', ?' * len(schemas[table])})"
            )
            # the rowids in the order given: a lookup each, never a scan of the cache
            self.copies[table] = (
                f"insert into {_table_name(plan, table)} select * from {cache} "
                "where rowid in (select value from json_each(?))"
            )
        # (table, entry) -> its rows' rowids in the cache; table -> row -> rowid (a row stored
        # in two entries, say the customer's and the merchant's, is cached once)
        self.cached: dict[tuple[str, bytes], list[int]] = {}
        self.row_ids: dict[str, dict[tuple, int]] = {t: {} for t in stored}
        self.cached_rows = 0

    def _cache(self, table: str, entry: bytes, rows: list[tuple]) -> list[int]:
        """Cache a store entry's rows (SQLite values); their rowids. Under `self.lock`."""
        known = self.row_ids[table]
        new = [r for r in dict.fromkeys(rows) if r not in known]
        if new:
            first = self.cached_rows + 1
            self.con.execute("begin")
            try:
                self.con.executemany(
                    self.cache_inserts[table], [(first + i, *r) for i, r in enumerate(new)]
                )
                self.con.execute("commit")
            except BaseException:
                self.con.execute("rollback")
                raise
            known.update(zip(new, range(first, first + len(new))))
            self.cached_rows += len(new)
        ids = self.cached[(table, entry)] = [known[r] for r in rows]
        return ids

    def _clear_cache(self) -> None:
        for table in self.copies:
            self.con.execute(f"delete from {view('cache', table)}")
        self.cached.clear()
        for known in self.row_ids.values():
            known.clear()
        self.cached_rows = 0

    def _row_ids(self, table: str, entries: list[tuple[bytes, list[tuple] | None]]) -> list[int]:
        """The cache rowids of `table`'s rows in `entries`, without duplicates. Under the lock."""
        ids: list[int] = []
        for entry, rows in entries:
            got = self.cached.get((table, entry))
            if got is None:
                if rows is None:
                    rows = self._arrow_rows(table, from_ipc(entry))
                got = self._cache(table, entry, rows)
            ids.extend(got)
        return list(dict.fromkeys(ids))

    def _arrow_rows(self, table: str, arrow) -> list[tuple]:
        """An Arrow table's rows in `table`'s column order, as SQLite values."""
        return arrow_rows(arrow.select(self.arrow[table].names))

    def stored_rows(self, table: str, blobs: list[bytes]) -> list[tuple[bytes, list | None]]:
        """What `run` takes as `table`'s stored rows: each of the store's Arrow IPC streams with
        its rows as SQLite values, decoded here (outside the engine's lock) unless the entry is
        cached already (None then)."""
        cached = self.cached
        return [
            (blob, None if (table, blob) in cached else self._arrow_rows(table, from_ipc(blob)))
            for blob in blobs
        ]

    def remember(self, table: str, blob: bytes, rows: list[dict]) -> None:
        """Cache the SQLite rows of a store entry `record` has just written (`rows`, the values
        it encoded in `blob`), as `stored_rows` would decode them: the next request of that
        entity reads the entry without decoding it."""
        schema = self.arrow[table]
        convert = [(n, to_sqlite_value(schema.field(n).type)) for n in schema.names]
        values = [tuple(c(r[n]) if c else r[n] for n, c in convert) for r in rows]
        with self.lock:
            if (table, blob) not in self.cached:
                self._cache(table, blob, values)

    def _rows(self, sql: str) -> list[dict]:
        """A query's rows as dicts of plain values (the DuckDB engine's, after `plain`)."""
        cursor = self.con.execute(sql)
        names = [d[0] for d in cursor.description]
        convert = [self.plain.get(n) for n in names]
        return [
            {n: (c(v) if c else v) for n, c, v in zip(names, convert, row)}
            for row in cursor.fetchall()
        ]

    def _fresh_rows(self, table: str) -> FreshRows:
        cursor = self.con.execute(f"select * from {view('fresh', table)}")
        return FreshRows([d[0] for d in cursor.description], cursor.fetchall(), self.arrow[table])

    def _query(self, sql: str, table: str):
        cursor = self.con.execute(sql)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        schema = self.arrow[table]
        import pyarrow as pa

        by_name = dict(zip(names, zip(*rows))) if rows else {n: () for n in names}
        arrays = [from_sqlite_column(list(by_name[f.name]), f.type) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)

    def run(self, rows: list[dict], stored: dict, fresh_of: tuple[str, ...] = (), answer="arrow"):
        """As `Engine.run`: the feature set's rows of the request (Arrow, dicts with
        `answer="rows"`, or None), and the fresh rows of the tables in `fresh_of` (`FreshRows`).
        `stored`: table -> its entries from `stored_rows`."""
        request = [
            tuple(request_value(row.get(n), kind, n) for n, kind in self.source) for row in rows
        ]
        with self.lock:
            if self.cached_rows > CACHED_ROWS:
                self._clear_cache()
            ids = {t: self._row_ids(t, e) for t, e in stored.items() if e and t in self.copies}
            self.con.execute("begin")
            try:
                # every table is empty here: each run's rows are rolled back after it
                self.con.executemany(self.source_insert, request)
                for table, row_ids in ids.items():
                    self.con.execute(self.copies[table], (json.dumps(row_ids),))
                for merge in self.merges:
                    self.con.execute(merge)
                if answer == "rows":
                    result = self._rows(self.answer_sql)
                elif answer:
                    result = self._query(self.answer_sql, self.plan.feature_set)
                else:
                    result = None
                fresh = {t: self._fresh_rows(t) for t in fresh_of}
            finally:
                self.con.execute("rollback")
        return result, fresh
