"""`online/<feature_set>`: the online store of a feature set, rewritten from the warehouse after
each update of the feature set (eager, like the feature sets).

It compiles the feature set's dbt SQL (what a request runs through, ml_assets/online/plan.py),
and writes it to the store with each entity's history rows (ml_assets/online/snapshot.py). The
store is the `online_store` resource: a SQLite file under the state folder by default, Redis
in production (`HEADWATER_ONLINE_STORE=redis://127.0.0.1:6379/0`).
"""

import json
import os
import tempfile
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from headwater_core.config import environ, state_dir
from headwater_core.dbt.in_process import DBT_LOCK
from headwater_core.names import DUCKDB_POOL, ONLINE, online_key, table_key
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import features_condition
from ml_assets.models.spec import ModelSpec
from ml_assets.online.plan import HISTORY, build_plan
from ml_assets.online.snapshot import write_snapshot
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


def compiled_manifest(dbt: DbtCliResource, model: str) -> dict:
    """dbt's manifest with `model` and its parents compiled, as a first build would compile
    them (no partition window, no incremental filter): against an empty scratch DuckDB file,
    so the warehouse is not opened and `is_incremental()` is false."""
    with tempfile.TemporaryDirectory(prefix="hw-online-") as scratch:
        target = Path(scratch) / "target"
        with DBT_LOCK, environ({"HEADWATER_DUCKDB_PATH": str(Path(scratch) / "compile.duckdb")}):
            dbt.cli(
                ["compile", "--select", f"+{model}"],
                target_path=target,
                raise_on_error=True,
            ).wait()
        return json.loads((target / "manifest.json").read_text())


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
        manifest = compiled_manifest(dbt, feature_set.split(".")[-1])
        plan = build_plan(manifest, feature_set, list(spec.keys), spec.event_time)
        with warehouse.connect(read_only=True) as con:
            written = write_snapshot(
                con, online_store.open(), plan, list(spec.keys), spec.event_time
            )
        context.log.info(f"online store {written.generation}: {written.rows} rows")
        return dg.MaterializeResult(
            metadata={
                "generation": written.generation,
                "through": str(written.through),
                "history_rows": written.rows,
                "bytes": written.bytes,
                "entities": dg.MetadataValue.json(written.entities),
                "path_models": [m.table for m in plan.models],
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
