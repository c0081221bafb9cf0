"""`online/<feature_set>`: the online store of a feature set, rewritten from the warehouse after
each update of the feature set (eager, like the feature sets).

It compiles the feature set's dbt SQL (what a request runs through, ml_assets/online/plan.py),
and writes it to the store with each entity's history rows (ml_assets/online/snapshot.py). The
store is the `online_store` resource: a SQLite file under the state folder by default, Redis
in production (`HEADWATER_ONLINE_STORE=redis://127.0.0.1:6379/0`).
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from headwater_core.config import environ, state_dir
from headwater_core.dbt.in_process import DBT_LOCK
from headwater_core.dbt.project import dbt_project, ensure_manifest
from headwater_core.dbt.resource import dbt_target
from headwater_core.names import DUCKDB_POOL, ONLINE, online_key, table_key
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import features_condition
from ml_assets.models.spec import ModelSpec
from ml_assets.online.plan import HISTORY, build_plan
from ml_assets.online.snapshot import current_plan, write_snapshot
from ml_assets.online.store import KeyValueStore, open_store

STORE_ENV = "HEADWATER_ONLINE_STORE"


class OnlineStore(dg.ConfigurableResource):
    """Where online features live: `url` (`memory://`, a SQLite file path, `redis://...`); empty
    means $HEADWATER_ONLINE_STORE, else `<state>/online.sqlite`. Every key starts with
    `prefix`."""

    url: str = ""
    prefix: str = "hw:"

    def resolved_url(self) -> str:
        return self.url or os.environ.get(STORE_ENV) or str(state_dir() / "online.sqlite")

    def open(self) -> KeyValueStore:
        return open_store(self.resolved_url(), self.prefix)


def compiled_manifest(dbt: DbtCliResource, model: str, warehouse_file: str) -> dict:
    """dbt's manifest with `model` and its parents compiled, as a first build would compile
    them (no partition window, no incremental filter): against an empty scratch DuckDB file,
    so the warehouse is not opened and `is_incremental()` is false. The scratch file has the
    warehouse's file name (`warehouse_file`), the database name dbt writes into relations, so
    the step's process reuses the project's parse (headwater_core/dbt/in_process.py)."""
    with tempfile.TemporaryDirectory(prefix="hw-online-") as scratch:
        target = Path(scratch) / "target"
        with DBT_LOCK, environ({"HEADWATER_DUCKDB_PATH": str(Path(scratch) / warehouse_file)}):
            dbt.cli(
                ["compile", "--select", f"+{model}"],
                target_path=target,
                raise_on_error=True,
            ).wait()
        return json.loads((target / "manifest.json").read_text())


def plan_fingerprint(dbt: DbtCliResource, model: str) -> str:
    """The fingerprint of `model`'s compiled path in the project's parsed manifest (no
    compile), with the dbt target and the HEADWATER_ / DBT_ settings dbt's `env_var` may read.
    Equal fingerprints compile to equal SQL, so the store's plan is reused and a new day's
    snapshot skips dbt (a parse and a compile, about 3 s of every day's run)."""
    manifest = json.loads(ensure_manifest(dbt_project(Path(dbt.project_dir))).read_text())
    settings = {k: v for k, v in os.environ.items() if k.startswith(("HEADWATER_", "DBT_"))}
    return manifest_fingerprint(manifest, model, [dbt_target(dbt), settings])


def manifest_fingerprint(manifest: dict, model: str, context: list) -> str:
    """A hash of what `model`'s compiled SQL and its parents' depend on: those nodes' code,
    config and relation names, and every macro's SQL; `context` is hashed with them."""
    (node,) = [
        uid
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] == "model" and n["name"] == model
    ]
    path, todo = set(), [node]
    while todo:
        uid = todo.pop()
        if uid not in path:
            path.add(uid)
            todo.extend(manifest["parent_map"].get(uid, []))
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode())
    for uid in sorted(path):
        n = manifest["nodes"].get(uid) or manifest["sources"].get(uid) or {}
        parts = [uid, n.get("raw_code"), n.get("config"), n.get("relation_name")]
        digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    for uid in sorted(manifest["macros"]):
        digest.update(f"{uid}\0{manifest['macros'][uid]['macro_sql']}".encode())
    return digest.hexdigest()[:16]


def _redacted(url: str) -> str:
    # a Redis URL may carry a password
    return url.split("@")[-1] if "@" in url else url


def build_online_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    """The online store asset of `spec`'s feature set."""
    feature_set = spec.feature_set
    deps = dict.fromkeys([feature_set, *(s.relation for s in HISTORY[feature_set])])

    @dg.asset(
        key=dg.AssetKey(online_key(feature_set)),
        group_name=ONLINE,
        owners=[spec.owner],
        deps=[dg.AssetKey(table_key(t)) for t in deps],
        automation_condition=features_condition(),
        pool=DUCKDB_POOL,
        kinds={"duckdb", "python"},
    )
    def online_features(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: Warehouse,
        online_store: OnlineStore,
    ) -> dg.MaterializeResult:
        """The feature set's compiled SQL and each entity's recent history, in the online store."""
        model, store = feature_set.split(".")[-1], online_store.open()
        fingerprint = plan_fingerprint(dbt, model)
        plan = current_plan(store, feature_set, fingerprint)
        compiled = plan is None
        if compiled:
            manifest = compiled_manifest(dbt, model, warehouse.resolved_path().name)
            plan = build_plan(manifest, feature_set, list(spec.keys), spec.event_time)
        with warehouse.connect(read_only=True) as con:
            written = write_snapshot(
                con, store, plan, list(spec.keys), spec.event_time, fingerprint
            )
        context.log.info(
            f"online store {written.generation}: {written.rows} rows; SQL "
            + ("compiled" if compiled else f"reused (dbt project unchanged, {fingerprint})")
        )
        return dg.MaterializeResult(
            metadata={
                "generation": written.generation,
                "through": str(written.through),
                "history_rows": written.rows,
                "bytes": written.bytes,
                "entities": dg.MetadataValue.json(written.entities),
                "path_models": [m.table for m in plan.models],
                "plan_fingerprint": fingerprint,
                "plan_compiled": compiled,
                "serving_engine": written.engine,
                "store": _redacted(online_store.resolved_url()),
            }
        )

    return online_features


def build_online_assets(specs: list[ModelSpec]) -> list[dg.AssetsDefinition]:
    """One online asset per feature set with a declared history, for the first spec using it."""
    first: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.feature_set in HISTORY:
            first.setdefault(spec.feature_set, spec)
    return [build_online_asset(spec) for spec in first.values()]
