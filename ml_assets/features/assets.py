"""Feature sets: the dbt project's `features` layer, as assets of the ML code location.

The SQL lives in `dbt_project/models/features/` so analysts can read and edit it. Its upstream
marts belong to the data-engineering location; dagster-dbt turns the refs into dependencies by
asset key, so the two locations form one graph without importing each other's assets.

The feature models are incremental (dbt_project/macros/feature_window.sql): a run rewrites the
days from the earliest day partition of a mart materialised since the feature set last was (a
corrected old day included), each model reading the lookback its windows need. With no such
partition, each model goes on from its own last loaded day; a missing table is built in full.
"""

import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from headwater_core.dbt.project import dbt_project, ensure_manifest
from headwater_core.dbt.resource import run_dbt
from headwater_core.dbt.translator import HeadwaterDbtTranslator
from headwater_core.names import DUCKDB_POOL, FEATURES
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import features_condition

FEATURES_SELECTION = f"path:models/{FEATURES}"


class FeaturesTranslator(HeadwaterDbtTranslator):
    """The shared translator, plus declarative automation: feature sets follow the marts."""

    def headwater_spec(self, spec: dg.AssetSpec, props) -> dg.AssetSpec:
        spec = super().headwater_spec(spec, props)
        return spec.replace_attributes(automation_condition=features_condition())


# Upstream materialisations read per asset to find the earliest changed day (a long backfill has
# one per day; more than this is read as "everything changed").
MAX_UPSTREAM_RECORDS = 5_000


def earliest_changed_day(
    instance: dg.DagsterInstance, built: set[dg.AssetKey], upstream: set[dg.AssetKey]
) -> str | None:
    """The earliest day partition of an `upstream` asset materialised since every asset of
    `built` last was; None when there is none, or when one of `built` was never materialised
    (its table is then built in full, which a window would cut short)."""
    last_built = []
    for key in built:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1)
        if not records.records:
            return None
        last_built.append(records.records[0].storage_id)
    days = []
    for key in upstream:
        since = dg.AssetRecordsFilter(asset_key=key, after_storage_id=min(last_built))
        for record in instance.fetch_materializations(since, limit=MAX_UPSTREAM_RECORDS).records:
            partition = record.partition_key
            # day partitions ('2025-01-03'), or the day of an hourly one ('2025-01-03-05:00')
            if partition and len(partition) >= 10 and partition[4] == partition[7] == "-":
                days.append(partition[:10])
    return min(days) if days else None


def build_feature_assets() -> list[dg.AssetsDefinition]:
    @dbt_assets(
        manifest=ensure_manifest(),
        project=dbt_project(),
        select=FEATURES_SELECTION,
        name=FEATURES,
        dagster_dbt_translator=FeaturesTranslator(),
        pool=DUCKDB_POOL,
    )
    def features(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        """Feature tables, built incrementally from the marts: the changed days and the lookback
        their windows need."""
        upstream = set(context.assets_def.keys_by_input_name.values())
        since = earliest_changed_day(context.instance, context.selected_asset_keys, upstream)
        # open-ended: every later row may read the changed day
        window = ["--vars", json.dumps({"min_date": since})] if since else []
        context.log.info(f"features from {since or 'each table’s last loaded day'} on")
        yield from run_dbt(context, dbt, warehouse, ["build", *window])

    return [features]
