"""OnlineFeatureSource: a model's features for request rows, from the online store, computed by
the feature set's own dbt SQL (ml_assets/online/engine.py).

What the service calls (its `FeatureSource` protocol, duck-typed): `request_fields()`,
`features(rows)`, `record(rows)`. The store's current snapshot is checked on every call, so a
new snapshot written by the `online/<feature_set>` asset is used from the next request on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from ml_assets.models.spec import ModelSpec
from ml_assets.online.engine import Engine
from ml_assets.online.plan import event_tables, plan_from_dict
from ml_assets.online.snapshot import (
    current_key,
    entity_key,
    meta_key,
    recorded_key,
    to_ipc,
)
from ml_assets.online.sqlite_engine import SqliteEngine
from ml_assets.online.store import KeyValueStore

log = logging.getLogger(__name__)

ENGINES = ("auto", "sqlite", "duckdb")
# answered requests whose fresh rows wait for `record` (bounded: an answer that was not served
# is never recorded)
PENDING_FRESH = 1024


class NoSnapshot(LookupError):
    """The store has no snapshot of the feature set yet (the online asset has not run)."""


def python_type(data_type: str) -> type:
    """The Python type a request carries for a column of the raw contract's data type."""
    kind = data_type.strip().lower()
    if kind.startswith(("decimal", "numeric", "double", "float", "real")):
        return float
    if kind.startswith(("int", "bigint", "smallint", "tinyint", "hugeint")):
        return int
    if kind.startswith("bool"):
        return bool
    if kind.startswith("timestamp"):
        return datetime
    if kind == "date":
        return date
    return str


def plain(value):
    """A feature value as the model and JSON take it (decimals as floats)."""
    return float(value) if isinstance(value, Decimal) else value


def check_engine(kind: str) -> None:
    if kind not in ENGINES:
        raise ValueError(f"online engine {kind!r}: one of {', '.join(ENGINES)}")


def make_engine(kind: str, plan, meta: dict):
    """The engine that runs the plan: SQLite (the compiled SQL as the snapshot rewrote it, fast
    per request) or DuckDB (the compiled SQL as it is). `auto` takes SQLite unless the
    snapshot has no SQLite views (the SQL uses what the rewrite does not cover, or the snapshot
    predates the SQLite engine)."""
    check_engine(kind)
    schemas, keys = meta["schemas"], meta["keys"]
    views = meta.get("sqlite_views")
    if kind == "duckdb" or (kind == "auto" and views is None):
        if kind == "auto":
            why = meta.get("engine") or "the snapshot predates the SQLite engine"
            log.warning("online features of %s run on %s", plan.feature_set, why)
        return Engine(plan, schemas, keys)
    if views is None:
        raise LookupError(
            f"the snapshot of {plan.feature_set} has no SQLite views: {meta.get('engine')}"
        )
    return SqliteEngine(plan, schemas, keys, [tuple(v) for v in views])


class _Snapshot:
    """One generation of the store, loaded: its plan, engine and history keys."""

    def __init__(self, generation: str, meta: dict, engine: str = "auto") -> None:
        self.generation = generation
        self.meta = meta
        self.plan = plan_from_dict(meta["plan"])
        self.keys = meta["keys"]
        self.through = date.fromisoformat(meta["through"]) if meta["through"] else None
        self.engine = make_engine(engine, self.plan, meta)
        self.event_tables = event_tables(self.plan, meta["schemas"], self.keys)


class OnlineFeatureSource:
    """A model's online features: request rows in, the feature set's rows for them out."""

    def __init__(self, store: KeyValueStore, spec: ModelSpec, engine: str = "auto") -> None:
        check_engine(engine)
        self.store = store
        self.spec = spec
        self.engine = engine
        self.namespace = spec.feature_set
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()
        # request keys -> (generation, the fresh rows its answer computed), for `record`
        self._fresh: OrderedDict[tuple, tuple[str, dict]] = OrderedDict()

    def snapshot(self) -> _Snapshot:
        """The store's current snapshot, loaded again only when a new one was written."""
        current = self.store.get(current_key(self.namespace))
        if current is None:
            raise NoSnapshot(
                f"the online store has no snapshot of {self.namespace}: materialize "
                f"online/{self.namespace.split('.')[-1]}"
            )
        generation = current.decode()
        with self._lock:
            if self._snapshot is None or self._snapshot.generation != generation:
                meta = self.store.get(meta_key(self.namespace, generation))
                self._snapshot = _Snapshot(generation, json.loads(meta), self.engine)
            return self._snapshot

    def request_fields(self) -> dict[str, type]:
        """What a request row must carry: the request source's columns (the raw contract) and
        their types; a column with accepted values is a `Literal` of them."""
        plan = self.snapshot().plan
        fields: dict[str, type] = {}
        for name, data_type in plan.source_columns.items():
            allowed = plan.categories.get(name)
            fields[name] = Literal[tuple(allowed)] if allowed else python_type(data_type)
        return fields

    def features(self, rows: list[dict]) -> list[dict]:
        """The model's feature values of each request row, by feature name, in request order."""
        answer = self._answer(rows, "rows")
        keys, names = list(self.spec.keys), list(self.spec.features)
        by_key = {tuple(r[k] for k in keys): r for r in answer}
        out = []
        for row in rows:
            key = tuple(row[k] for k in keys)
            if key not in by_key:
                raise KeyError(f"no feature row for {dict(zip(keys, key))}")
            out.append({n: plain(by_key[key][n]) for n in names})
        return out

    def features_table(self, rows: list[dict]):
        """The feature set's rows of the request (every column, as the table types them)."""
        return _in_order(self._answer(rows, "arrow"), rows, list(self.spec.keys))

    def _answer(self, rows: list[dict], form: str):
        """The engine's answer, its fresh rows kept for `record` (the same SQL would give the
        same rows again: they depend on the request and the dimensions, not on history)."""
        snap = self.snapshot()
        self._check_after_snapshot(snap, rows)
        answer, fresh = snap.engine.run(rows, self._stored(snap, rows), snap.event_tables, form)
        with self._lock:
            self._fresh[self._request_key(rows)] = (snap.generation, fresh)
            while len(self._fresh) > PENDING_FRESH:
                self._fresh.popitem(last=False)
        return answer

    def _request_key(self, rows: list[dict]) -> tuple:
        return tuple(tuple(row.get(k) for k in self.spec.keys) for row in rows)

    def record(self, rows: list[dict]) -> None:
        """Append served request rows to their entities' history, so the next request sees
        them as the feature table's windows would. The rows are those the answer's run computed
        (run again if the answer was not computed here, or by an older snapshot); the service
        records off the answer's critical path, after answering."""
        import pyarrow as pa

        snap = self.snapshot()
        self._check_after_snapshot(snap, rows)
        with self._lock:
            kept = self._fresh.pop(self._request_key(rows), None)
        if kept is not None and kept[0] == snap.generation:
            fresh = kept[1]
        else:
            _, fresh = snap.engine.run(rows, self._stored(snap, rows), snap.event_tables, None)
        items = []
        for table in snap.event_tables:
            schema = snap.engine.empty[table].schema
            new_rows = fresh[table].to_pylist()
            for piece in snap.plan.history:
                if piece.relation != table:
                    continue
                by_entity: dict = {}
                for row in new_rows:
                    by_entity.setdefault(row[piece.key], []).append(row)
                for value, entity_rows in by_entity.items():
                    key = entity_key(self.namespace, snap.generation, table, piece.key, value)
                    blob = to_ipc(pa.Table.from_pylist(entity_rows, schema))
                    snap.engine.remember(table, blob, entity_rows)
                    items.append((key, blob))
            # by day too, so that the next snapshot carries them over until they land
            by_day: dict = {}
            for row in new_rows:
                by_day.setdefault(_day(row.get(snap.meta["event_time"])), []).append(row)
            for day, day_rows in by_day.items():
                key = recorded_key(self.namespace, table, day)
                items.append((key, to_ipc(pa.Table.from_pylist(day_rows, schema))))
        self.store.push(items)

    def _stored(self, snap: _Snapshot, rows: list[dict]) -> dict:
        """table -> the request entities' stored rows (as the engine takes them)."""
        wanted = []
        for piece in snap.plan.history:
            for value in dict.fromkeys(r.get(piece.key) for r in rows):
                key = entity_key(self.namespace, snap.generation, piece.relation, piece.key, value)
                wanted.append((piece.relation, key))
        found: dict[str, list] = {}
        for (table, _), blobs in zip(wanted, self.store.lists([k for _, k in wanted])):
            found.setdefault(table, []).extend(blobs)
        return {table: snap.engine.stored_rows(table, blobs) for table, blobs in found.items()}

    def _check_after_snapshot(self, snap: _Snapshot, rows: list[dict]) -> None:
        """A request must be later than the snapshot's last day: an earlier day's rows are in
        the snapshot already, and would be counted twice."""
        if snap.through is None:
            return
        event_time = snap.meta["event_time"]
        for row in rows:
            value = row.get(event_time)
            day = _day(value)
            if day is not None and day <= snap.through:
                raise ValueError(
                    f"{event_time} {value} is not after the online store's last day {snap.through}"
                )


def _day(value) -> date | None:
    """The day of an event time (a datetime, a date or an ISO string)."""
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.date() if isinstance(value, datetime) else value


def _in_order(answer, rows: list[dict], keys: list[str]):
    """`answer`'s rows in the order of the request rows (one per request row)."""
    import pyarrow as pa

    position = {
        tuple(r): i for i, r in enumerate(zip(*[answer.column(k).to_pylist() for k in keys]))
    }
    order = []
    for row in rows:
        key = tuple(row[k] for k in keys)
        if key not in position:
            raise KeyError(f"no feature row for {dict(zip(keys, key))}")
        order.append(position[key])
    return answer.take(pa.array(order, pa.int64()))
