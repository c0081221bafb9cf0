"""The feature SQL run on a request, in an in-process DuckDB: the compiled dbt models of a plan
over the request's rows and the entities' history from the store.

The compiled SQL is run as dbt compiled it; only its relation names are replaced, each by a view
of this connection:

    the request source (raw.transactions)   hw_source: the request rows, cast to the raw table's
                                            types (the contract's casts)
    a path model P (fct_transactions, ...)  hw_fresh__P: P's SQL over the request (its inputs'
                                            fresh rows), as the daily build adds a new day
    ... read by the feature set, if stored  hw_all__P: P's stored rows plus its fresh rows
    a state relation S (dim_customers, ...) hw_state__S: the entities' stored rows (or none)

The feature set's own SQL reads the hw_all__ views, so its windows see the entities' history
and the request; its rows of the request are the answer. Path models other than the feature set
read only the fresh views: they are row-wise or per-day (staging, the daily fact, per-merchant
day counts), so a new day's rows are computed from that day's rows, as in the daily build.
"""

from __future__ import annotations

import threading

from ml_assets.online.plan import Plan
from ml_assets.online.snapshot import from_ipc


def view(kind: str, table: str) -> str:
    return f"hw_{kind}__{table.replace('.', '__')}"


def rewrite(sql: str, relation_names: dict[str, str], views: dict[str, str]) -> str:
    """`sql` with each table's dbt relation name (`"db"."schema"."name"`) replaced by a view."""
    # longest first: no relation name is then replaced inside a longer one
    for table in sorted(views, key=lambda t: -len(relation_names[t])):
        sql = sql.replace(relation_names[table], views[table])
    return sql


def model_views(plan: Plan) -> list[tuple[str, str]]:
    """(view name, SQL) of every view, in creation order."""
    path = {m.table for m in plan.models}
    stored = set(plan.stored)
    final = plan.models[-1].table
    out = []
    for model in plan.models:
        views = {}
        for table in model.reads:
            if table == plan.source:
                views[table] = "hw_source"
            elif table not in path:
                views[table] = view("state", table)
            elif model.table == final and table in stored:
                views[table] = view("all", table)
            else:
                views[table] = view("fresh", table)
        out.append((view("fresh", model.table), rewrite(model.sql, plan.relation_names, views)))
        if model.table in stored:
            out.append(
                (
                    view("all", model.table),
                    f"select distinct * from (select * from {view('state', model.table)} "
                    f"union all by name select * from {view('fresh', model.table)})",
                )
            )
    return out


class Engine:
    """One DuckDB connection with a plan's views; `run` answers one batch of request rows."""

    def __init__(self, plan: Plan, schemas: dict[str, list[list[str]]], keys: list[str]) -> None:
        import duckdb

        self.plan = plan
        self.keys = keys
        self.lock = threading.Lock()
        self.con = duckdb.connect(":memory:", config={"threads": 1})
        self.empty = {}
        for table, columns in schemas.items():
            cols = ", ".join(f'"{name}" {kind}' for name, kind in columns)
            name = view("empty", table)
            self.con.execute(f"create table {name} ({cols})")
            self.empty[table] = self.con.sql(f"select * from {name}").to_arrow_table()
            # a state relation with no stored rows reads the empty table
            self.con.register(view("state", table), self.empty[table])
        source = schemas[plan.source]
        self.source_columns = [name for name, _ in source]
        self.con.register("hw_request", self.empty[plan.source])
        casts = ", ".join(f'cast("{n}" as {t}) as "{n}"' for n, t in source)
        self.con.execute(f"create view hw_source as select {casts} from hw_request")
        for name, sql in model_views(plan):
            self.con.execute(f"create view {name} as {sql}")
        self.final = view("fresh", plan.models[-1].table)
        match = " and ".join(f'f."{k}" = r."{k}"' for k in keys)
        self.answer_sql = f"select f.* from {self.final} f semi join hw_source r on {match}"

    def request_table(self, rows: list[dict]):
        """The request rows as Arrow, every column of the source table present (None if the
        request did not carry it); the types are cast in SQL, as ingestion casts a file."""
        import pyarrow as pa

        return pa.Table.from_pylist([{c: row.get(c) for c in self.source_columns} for row in rows])

    name = "duckdb"

    def stored_rows(self, table: str, blobs: list[bytes]):
        """What `run` takes as `table`'s stored rows: the store's Arrow IPC streams, as one
        Arrow table (None when there are none)."""
        import pyarrow as pa

        if not blobs:
            return None
        return pa.concat_tables([from_ipc(b) for b in blobs], promote_options="permissive")

    def remember(self, table: str, blob: bytes, rows: list[dict]) -> None:
        """A store entry `record` has just written: nothing to keep here (Arrow is read as is)."""

    def run(self, rows: list[dict], stored: dict, fresh_of: tuple[str, ...] = (), answer="arrow"):
        """The feature set's rows of the request (Arrow, or with `answer="rows"` a list of
        dicts; None when `answer` is None), and the fresh rows of the tables in `fresh_of` (what
        `record` appends: anything with `to_pylist()`, here Arrow). `stored`: table -> the
        entities' rows (`stored_rows`)."""
        stored = {t: r for t, r in stored.items() if r is not None}
        request = self.request_table(rows)
        with self.lock:
            self.con.register("hw_request", request)
            for table, rows_of in stored.items():
                self.con.register(view("state", table), rows_of)
            try:
                result = self.con.sql(self.answer_sql).to_arrow_table() if answer else None
                fresh = {
                    t: self.con.sql(f"select * from {view('fresh', t)}").to_arrow_table()
                    for t in fresh_of
                }
            finally:
                for table in stored:
                    self.con.register(view("state", table), self.empty[table])
        return (result.to_pylist() if answer == "rows" else result), fresh
