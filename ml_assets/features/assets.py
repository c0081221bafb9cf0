"""Feature sets: the dbt project's `features` layer, as assets of the ML code location.

The SQL lives in `dbt_project/models/features/` so analysts can read and edit it. Its upstream
marts belong to the data-engineering location; dagster-dbt turns the refs into dependencies by
asset key, so the two locations form one graph without importing each other's assets.
"""

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

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        return spec.replace_attributes(automation_condition=features_condition())


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
        """Feature tables, rebuilt from the marts."""
        yield from run_dbt(context, dbt, warehouse, ["build"])

    return [features]
