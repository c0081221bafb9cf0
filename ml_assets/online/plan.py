"""What a feature set needs online: the dbt SQL a request runs through, and the history it reads.

No Dagster, no DuckDB: a plan is built from dbt's compiled manifest (`dbt compile`, whose nodes
carry `compiled_code` with every ref and source written as the node's `relation_name`).

A request is a row of the *request source*: the dbt source upstream of the feature set that
carries the model's keys and event time (for `fraud_classifier`, `payments.transactions`). The
*path* models are the feature set and every model between it and the request source
(stg_payments__transactions, fct_transactions, merchant_daily_label_stats, transaction_features):
their SQL runs on each request. Every other relation they read (dims, chargebacks) is *state*:
its rows come from the online store, or it is empty.

History is declared, not derived: which rows of which relation an entity needs, as far back as
the feature SQL's longest window over it (`HISTORY`). The parity test holds the declaration to
the SQL: a horizon shorter than a window shows as a served feature that differs from the table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Slice:
    """The rows of `relation` one entity (`key` = its id) needs: those with `time_column` on or
    after the day after the store's last day minus `days` (all rows when `days` is None), plus,
    with `keep_last`, the entity's newest older row (an unbounded "previous" window)."""

    relation: str
    key: str
    time_column: str | None = None
    days: int | None = None
    keep_last: bool = False


# The history each feature set's SQL reads, by the entity it partitions its windows by.
# transaction_features: customer windows up to 30 days and the customer's previous transaction,
# the merchant's 24 hours, the merchant's matured days D-120 .. D-61, and the two dims.
HISTORY: dict[str, tuple[Slice, ...]] = {
    "features.transaction_features": (
        Slice("marts.fct_transactions", "customer_id", "transacted_at", 30, keep_last=True),
        Slice("marts.fct_transactions", "merchant_id", "transacted_at", 1),
        Slice("features.merchant_daily_label_stats", "merchant_id", "transaction_date", 120),
        Slice("marts.dim_customers", "customer_id"),
        Slice("marts.dim_merchants", "merchant_id"),
    ),
}


@dataclass(frozen=True)
class Model:
    """A path model: its table name (`schema.name`), compiled SQL, and the tables it reads."""

    table: str
    sql: str
    reads: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """A feature set's online plan: the request source, the path models in build order (the
    feature set last), the state relations, and the relation name dbt wrote for each table."""

    feature_set: str
    source: str
    source_columns: dict[str, str]
    """the request source's declared columns and their data types (the raw contract)"""
    models: tuple[Model, ...]
    state: tuple[str, ...]
    relation_names: dict[str, str]
    history: tuple[Slice, ...]
    categories: dict[str, list[str]]
    """the request source's columns with accepted values (the contract's tests)"""

    @property
    def stored(self) -> tuple[str, ...]:
        """Tables whose rows the store keeps (state or path), in first-declared order."""
        return tuple(dict.fromkeys(s.relation for s in self.history))


class PlanError(ValueError):
    """The manifest cannot give a feature set an online plan."""


def _table(node: dict) -> str:
    name = node.get("alias") or node.get("identifier") or node["name"]
    return f"{node['schema']}.{name}"


def build_plan(
    manifest: dict,
    feature_set: str,
    keys: list[str],
    event_time: str,
    history: tuple[Slice, ...] | None = None,
) -> Plan:
    """The online plan of `feature_set` (`schema.table`) from a compiled dbt manifest; its
    history is `HISTORY[feature_set]` unless given."""
    history = history if history is not None else HISTORY.get(feature_set)
    if history is None:
        raise PlanError(f"{feature_set} has no declared online history (ml_assets/online/plan.py)")
    nodes = {**manifest["nodes"], **manifest["sources"]}
    by_table = {
        _table(n): uid for uid, n in nodes.items() if n["resource_type"] in ("model", "source")
    }
    if feature_set not in by_table:
        raise PlanError(f"{feature_set} is not a model of the dbt project")
    upstream = _upstream(nodes, by_table[feature_set])
    source = _request_source(nodes, upstream, [*keys, event_time], feature_set)
    path = [uid for uid in upstream if source in _upstream(nodes, uid) and uid != source]
    models = []
    for uid in _build_order(nodes, path):
        node = nodes[uid]
        if not node.get("compiled_code"):
            raise PlanError(f"{uid} has no compiled SQL: compile the project first")
        reads = tuple(_table(nodes[d]) for d in node["depends_on"]["nodes"])
        models.append(Model(_table(node), node["compiled_code"], reads))
    path_tables = {m.table for m in models} | {_table(nodes[source])}
    state = tuple(dict.fromkeys(t for m in models for t in m.reads if t not in path_tables))
    for piece in history:
        if piece.key not in nodes[source]["columns"]:
            raise PlanError(f"{feature_set}: history key {piece.key} is not a request column")
    return Plan(
        feature_set=feature_set,
        source=_table(nodes[source]),
        source_columns={
            name: (c.get("data_type") or "varchar") for name, c in nodes[source]["columns"].items()
        },
        models=tuple(models),
        state=state,
        relation_names={_table(nodes[u]): nodes[u]["relation_name"] for u in upstream},
        history=tuple(history),
        categories=accepted_values(manifest, source),
    )


def _upstream(nodes: dict, uid: str) -> list[str]:
    """`uid` and every model or source it depends on, transitively."""
    seen: dict[str, None] = {}
    stack = [uid]
    while stack:
        current = stack.pop()
        if current in seen or current not in nodes:
            continue
        seen[current] = None
        stack.extend(nodes[current].get("depends_on", {}).get("nodes", []))
    return list(seen)


def _request_source(nodes: dict, upstream: list[str], columns: list[str], feature_set: str) -> str:
    sources = [
        uid
        for uid in upstream
        if nodes[uid]["resource_type"] == "source" and set(columns) <= set(nodes[uid]["columns"])
    ]
    if len(sources) != 1:
        raise PlanError(
            f"{feature_set}: {len(sources)} upstream sources declare all of {columns}; "
            "exactly one must (the source a request is a row of)"
        )
    return sources[0]


def _build_order(nodes: dict, uids: list[str]) -> list[str]:
    """`uids` with every node after the nodes it depends on."""
    order: list[str] = []
    wanted = set(uids)

    def visit(uid: str) -> None:
        if uid in order or uid not in wanted:
            return
        for dep in nodes[uid]["depends_on"]["nodes"]:
            visit(dep)
        order.append(uid)

    for uid in sorted(uids):
        visit(uid)
    return order


def plan_to_dict(plan: Plan) -> dict:
    """The plan as JSON-able data (stored with the snapshot: the service needs no dbt)."""
    return {
        "feature_set": plan.feature_set,
        "source": plan.source,
        "source_columns": plan.source_columns,
        "models": [[m.table, m.sql, list(m.reads)] for m in plan.models],
        "state": list(plan.state),
        "relation_names": plan.relation_names,
        "history": [[s.relation, s.key, s.time_column, s.days, s.keep_last] for s in plan.history],
        "categories": plan.categories,
    }


def plan_from_dict(data: dict) -> Plan:
    return Plan(
        feature_set=data["feature_set"],
        source=data["source"],
        source_columns=data["source_columns"],
        models=tuple(Model(t, sql, tuple(reads)) for t, sql, reads in data["models"]),
        state=tuple(data["state"]),
        relation_names=data["relation_names"],
        history=tuple(Slice(*s) for s in data["history"]),
        categories=data["categories"],
    )


def accepted_values(manifest: dict, source_uid: str) -> dict[str, list[str]]:
    """The request source's columns with an `accepted_values` test: their allowed values."""
    out: dict[str, list[str]] = {}
    for node in manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if meta.get("name") != "accepted_values" or source_uid not in node["depends_on"]["nodes"]:
            continue
        column = node.get("column_name") or meta.get("kwargs", {}).get("column_name")
        values = meta.get("kwargs", {}).get("values")
        if column and values:
            out[column] = [str(v) for v in values]
    return out


def event_tables(
    plan: Plan, schemas: dict[str, list[list[str]]], keys: list[str]
) -> tuple[str, ...]:
    """The stored path tables with one row per request (they carry the model's keys: the daily
    fact): what `record` appends a served request to."""
    path = {m.table for m in plan.models}
    return tuple(t for t in plan.stored if t in path and set(keys) <= {c for c, _ in schemas[t]})
